-- A submission keeps its source code; the leaderboard is rebuilt from the
-- best score of each user, which this index serves.
ALTER TABLE submissions ADD COLUMN code TEXT NOT NULL DEFAULT '';
CREATE INDEX submissions_scores ON submissions (tenant_id, challenge_id, user_id, score DESC)
    WHERE score IS NOT NULL;
