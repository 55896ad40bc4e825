-- Master database (seed 1.4), SQLite flavour. Days are local calendar days 'YYYY-MM-DD';
-- slots are 0..47 (see metermatrix/slots.py); energy is integer watt-hours.
PRAGMA journal_mode = WAL;

CREATE TABLE IF NOT EXISTS meters (
    meter_id   INTEGER PRIMARY KEY,
    name       TEXT,
    fin_no     TEXT,
    region     TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS meters_region ON meters (region);

-- Every half-hourly reading ever acknowledged: the durable log and the history.
CREATE TABLE IF NOT EXISTS readings (
    meter_id    INTEGER NOT NULL,
    day         TEXT    NOT NULL,
    slot        INTEGER NOT NULL CHECK (slot BETWEEN 0 AND 47),
    energy_wh   INTEGER NOT NULL CHECK (energy_wh >= 0),
    PRIMARY KEY (meter_id, day, slot)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_day ON readings (day);

-- One row per meter and closed day: the seed's "date": total entries.
CREATE TABLE IF NOT EXISTS daily_totals (
    meter_id   INTEGER NOT NULL,
    day        TEXT    NOT NULL,
    energy_wh  INTEGER NOT NULL,
    readings   INTEGER NOT NULL,
    PRIMARY KEY (meter_id, day)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS daily_totals_day ON daily_totals (day);

-- Per region and closed day, kept in step with daily_totals for the dashboards.
CREATE TABLE IF NOT EXISTS region_daily (
    region     TEXT    NOT NULL,
    day        TEXT    NOT NULL,
    energy_wh  INTEGER NOT NULL,
    meters     INTEGER NOT NULL,
    readings   INTEGER NOT NULL,
    PRIMARY KEY (region, day)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS closed_days (
    day        TEXT PRIMARY KEY,
    closed_at  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS residents (
    meter_id      INTEGER PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS managers (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

-- Login sessions: the SHA-256 of each cookie's token, never the token itself. Times are
-- ISO 8601 UTC; a session ends at expires_at, on logout, or when it is revoked.
CREATE TABLE IF NOT EXISTS sessions (
    session_id   TEXT PRIMARY KEY,
    user         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user);
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires_at);

-- Login throttle: attempts per key ('address:...', 'resident:...', 'manager:...') counted
-- before each password check; last_attempt_s is Unix time [s].
CREATE TABLE IF NOT EXISTS login_attempts (
    key            TEXT PRIMARY KEY,
    attempts       INTEGER NOT NULL,
    last_attempt_s REAL    NOT NULL
) WITHOUT ROWID;
