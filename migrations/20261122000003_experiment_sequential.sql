-- The mixture standard deviation of an experiment's always-valid (mSPRT) test, fixed at creation
-- so peeking never changes the test.
ALTER TABLE experiments ADD COLUMN mixture_sd DOUBLE PRECISION;
