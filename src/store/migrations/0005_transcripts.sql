-- Issue 14 item 3: offline transcription of kept voicemails. A voicemail is owed a transcript
-- while transcribed_at is NULL; its outcome is final when transcribed_at is set, with either the
-- text (transcript, possibly empty: nothing recognisable was said) or the last error.
ALTER TABLE voicemails ADD COLUMN transcript TEXT;
ALTER TABLE voicemails ADD COLUMN transcript_engine TEXT;
ALTER TABLE voicemails ADD COLUMN transcribed_at INTEGER;
ALTER TABLE voicemails ADD COLUMN transcript_error TEXT;
-- Failed attempts so far (a failure is retried up to transcription.max_attempts times).
ALTER TABLE voicemails ADD COLUMN transcript_attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX voicemails_untranscribed ON voicemails (id) WHERE transcribed_at IS NULL;
