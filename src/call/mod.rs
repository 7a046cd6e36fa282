//! One task per call: owns the call's media session and drives its prompt playback.
