package messaging

import "github.com/ThreeDotsLabs/watermill/message"

// DisableInboxForTest makes n's consumers run without the inbox, for this
// package's negative controls. It exists only in test binaries.
func DisableInboxForTest(n *Node) {
	n.inboxMiddleware = func(h message.HandlerFunc) message.HandlerFunc { return h }
}
