package messaging

// retryableWhenBlocking says which errors FailureBlock's in-place retry
// retries: every error but an interrupted one, permanent errors included. A
// blocking consumer never gives up on a message, so not retrying a permanent
// error would not set it aside: it would only skip the backoff, and the
// message would come back after the subscriber's NackResendSleep (100 ms) and
// fail again, ten times a second for as long as it is held. Retried, it fails
// MaxRetries+1 times per delivery with the retry backoff in between (about 3 s
// per round with the defaults), then is nacked and delivered again.
func retryableWhenBlocking(err error) bool { return !IsInterrupted(err) }
