-- The contextual, warm-started bandits (src/bandit): one posterior per (bandit, context, arm)
-- with its prior kept apart from the data; the lists still waiting for their reward, so a
-- restart neither forgets nor double-counts them; and a history of the posteriors.
-- bandit_arms (one context, uniform prior) is no longer read; its totals stay for reference.
CREATE TABLE bandit_posteriors (
    bandit       TEXT NOT NULL,
    context      TEXT NOT NULL,
    arm          TEXT NOT NULL,
    prior_alpha  DOUBLE PRECISION NOT NULL CHECK (prior_alpha > 0),
    prior_beta   DOUBLE PRECISION NOT NULL CHECK (prior_beta > 0),
    pulls        BIGINT NOT NULL DEFAULT 0,
    successes    DOUBLE PRECISION NOT NULL DEFAULT 0,
    failures     DOUBLE PRECISION NOT NULL DEFAULT 0,
    prior_set_at BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (bandit, context, arm)
);

-- A row per list shown under a bandit arm and not yet rewarded or expired. Settling deletes the
-- row and counts the outcome in one transaction, so each list counts exactly once whichever
-- process settles it.
CREATE TABLE bandit_pending (
    request_id TEXT PRIMARY KEY,
    bandit     TEXT NOT NULL,
    context    TEXT NOT NULL,
    arm        TEXT NOT NULL,
    shown_at   BIGINT NOT NULL
);
CREATE INDEX bandit_pending_by_time ON bandit_pending (shown_at);

-- Posterior totals (prior + data) of the arms that changed, at most every
-- bandit.history_interval_s per process.
CREATE TABLE bandit_history (
    bandit  TEXT NOT NULL,
    context TEXT NOT NULL,
    arm     TEXT NOT NULL,
    at      BIGINT NOT NULL,
    alpha   DOUBLE PRECISION NOT NULL,
    beta    DOUBLE PRECISION NOT NULL,
    pulls   BIGINT NOT NULL
);
CREATE INDEX bandit_history_by_context ON bandit_history (bandit, context, at);
