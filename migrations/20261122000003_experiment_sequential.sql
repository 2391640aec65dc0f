-- The mixture standard deviation of an experiment's always-valid (mSPRT) test, fixed at creation
-- so peeking never changes the test.
ALTER TABLE experiments ADD COLUMN mixture_sd DOUBLE PRECISION;
-- Group-sequential design: listeners planned in all, and at how many equally spaced fractions of
-- them the test looks (NULL: no planned size, no group-sequential test).
ALTER TABLE experiments ADD COLUMN planned_listeners BIGINT;
ALTER TABLE experiments ADD COLUMN looks BIGINT;
