package consumer

import "github.com/ThreeDotsLabs/watermill/message"

// WithoutInboxForTest is the Option that runs the consumers without the inbox,
// for this package's negative controls. It exists only in test binaries.
func WithoutInboxForTest() Option {
	return func(o *options) {
		o.wrapInbox = append(o.wrapInbox, func(message.HandlerMiddleware) message.HandlerMiddleware {
			return func(h message.HandlerFunc) message.HandlerFunc { return h }
		})
	}
}
