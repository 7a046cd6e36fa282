-- Voicemail audio in the database (issue 16; why: src/store/audio.rs): the WAV bytes of each
-- voicemail, written in the transaction that registers it, so every node can play, mail and
-- transcribe it. A table of its own rather than a column, so listing voicemails never drags
-- megabytes of audio along. A voicemail registered before this migration, or whose file could
-- not be read when it was registered, has no row: readers fall back to its file.
CREATE TABLE voicemail_audio (
    voicemail_id BIGINT PRIMARY KEY REFERENCES voicemails (id) ON DELETE CASCADE,
    wav          BYTEA  NOT NULL
);
