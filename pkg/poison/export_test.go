package poison

import (
	"context"

	"github.com/IBM/sarama"
)

// ReadRange reads the records from offset from up to (not including) to as
// every call does, and calls visit with each one's offset.
func (t *Tool) ReadRange(ctx context.Context, from, to int64, visit func(offset int64)) error {
	r, err := t.open()
	if err != nil {
		return err
	}
	defer r.close()
	return r.read(ctx, from, to, func(km *sarama.ConsumerMessage) error {
		visit(km.Offset)
		return nil
	})
}
