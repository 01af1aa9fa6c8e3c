package messaging

// MetadataReplayedAt marks a message re-published from a poison topic.
const MetadataReplayedAt = "replayed_at"
