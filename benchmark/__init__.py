"""The MMFace4D benchmark: metrics, protocol, submissions, scoring, reports and bundled models."""
