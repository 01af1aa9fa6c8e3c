package consumer

import (
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// ThrottleConfig bounds how fast each consumer takes messages: at most
// MaxMessages per Per, evenly spread (one every Per/MaxMessages; Watermill's
// middleware.Throttle, a ticker). Each consumer (handler) has its own budget;
// retries of a message do not count, deliveries do (a nacked message that comes
// back waits for a tick again). Use it to keep a backlog (a replay, a consumer
// catching up) from swamping the database. Zero MaxMessages: no throttling.
type ThrottleConfig struct {
	// MaxMessages is how many messages a consumer may take per Per. 0 (default):
	// unlimited.
	MaxMessages int64 `env:"MAX_MESSAGES"`
	// Per is the period MaxMessages counts over. Default 1 s.
	Per time.Duration `env:"PER"`
}

// Defaults returns c with zero fields set to their defaults.
func (c ThrottleConfig) Defaults() ThrottleConfig {
	if c.Per == 0 {
		c.Per = time.Second
	}
	return c
}

// Validate reports an invalid field.
func (c ThrottleConfig) Validate() error {
	switch {
	case c.MaxMessages < 0:
		return errors.New("throttle: max messages must be >= 0")
	case c.MaxMessages > 0 && c.Per/time.Duration(c.MaxMessages) <= 0:
		return errors.New("throttle: per / max messages must be a positive duration")
	}
	return nil
}

// middleware returns a fresh throttle middleware for one consumer (none if c is
// off). It waits for its tick before the message enters the rest of the stack,
// so the wait happens once per delivery, not per retry. The wait does not end
// with a shutdown; it lasts at most Per/MaxMessages.
func (c ThrottleConfig) middleware() []message.HandlerMiddleware {
	if c.MaxMessages <= 0 {
		return nil
	}
	return []message.HandlerMiddleware{middleware.NewThrottle(c.MaxMessages, c.Per).Middleware}
}
