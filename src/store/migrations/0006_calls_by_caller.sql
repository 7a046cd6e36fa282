-- A call's start counts the caller's earlier calls in the repeat window and asks whether one of
-- them agreed the terms (schema.rs calls_since, agreed_since), inside its transaction. Without an
-- index on the caller those read every earlier row of `calls`: a cost per call that grows with
-- the line's history (measured: call set-up at 2,000 calls/s fell to half of sipp's UAS as the
-- table grew). With it, each is a short range of one caller's calls.
CREATE INDEX calls_caller_started ON calls (caller, started_at);
