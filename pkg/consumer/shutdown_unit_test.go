package consumer

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"testing"

	"github.com/onceflow/onceflow/pkg/failure"

	"github.com/ThreeDotsLabs/watermill/message"
)

// TestErrorsAfterCancellationAreInterrupted: whatever a handler returns once its
// message's context ended counts as interrupted (never poisoned); before that,
// only cancellation itself does.
func TestErrorsAfterCancellationAreInterrupted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cancelled bool
		err       error
		want      bool
	}{
		{"bad connection after the stop", true, driver.ErrBadConn, true},
		{"plain failure after the stop", true, errors.New("lock wait timeout"), true},
		{"context canceled", false, fmt.Errorf("exec: %w", context.Canceled), true},
		{"consumers stopping", false, ErrShuttingDown, true},
		{"plain failure while running", false, errors.New("lock wait timeout"), false},
		{"permanent failure while running", false, failure.Permanent(errors.New("bad")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			if tt.cancelled {
				cancel()
			} else {
				defer cancel()
			}
			msg := message.NewMessage("id", nil)
			msg.SetContext(ctx)
			_, err := interruptedByShutdown(func(*message.Message) ([]*message.Message, error) { return nil, tt.err })(msg)
			if got := IsInterrupted(err); got != tt.want {
				t.Fatalf("IsInterrupted(%v) = %v, want %v", err, got, tt.want)
			}
		})
	}
}
