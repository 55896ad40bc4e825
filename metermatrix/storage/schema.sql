-- Master database (seed 1.4), SQLite flavour, schema version 4 (PRAGMA user_version).
-- In the large tables a day is an integer, days since 1970-01-01 (metermatrix.storage
-- .packing.day_number); in the small ones it is 'YYYY-MM-DD'. Slots are 0..47 (see
-- metermatrix/slots.py); energy is integer watt-hours.
PRAGMA journal_mode = WAL;

-- first_day: the meter's first day with a reading or a daily total (a day number as in
-- the large tables; NULL: none yet), kept by the triggers below on every write of those.
CREATE TABLE IF NOT EXISTS meters (
    meter_id   INTEGER PRIMARY KEY,
    name       TEXT,
    fin_no     TEXT,
    region     TEXT,
    created_at TEXT NOT NULL,
    first_day  INTEGER
);
CREATE INDEX IF NOT EXISTS meters_region ON meters (region);
-- The dashboards' "meters due from which day" per region: a scan of this index alone.
CREATE INDEX IF NOT EXISTS meters_region_first_day ON meters (region, first_day);

-- Every half-hourly reading ever acknowledged, one row per meter and day: slots_wh is 48
-- little-endian uint16 [Wh] with 0xFFFF for a missing half hour, marks 2 bits per slot
-- saying how the reading arrived (storage/packing.py). The open day's rows are rewritten
-- by every group commit; a day's rows are appended together, so keyed (day, meter_id).
CREATE TABLE IF NOT EXISTS day_readings (
    day        INTEGER NOT NULL,
    meter_id   INTEGER NOT NULL,
    slots_wh   BLOB    NOT NULL CHECK (length(slots_wh) = 96),
    marks      BLOB    NOT NULL CHECK (length(marks) = 12),
    PRIMARY KEY (day, meter_id)
) WITHOUT ROWID;

-- One row per meter and closed day: the seed's "date": total entries.
CREATE TABLE IF NOT EXISTS daily_totals (
    day        INTEGER NOT NULL,
    meter_id   INTEGER NOT NULL,
    energy_wh  INTEGER NOT NULL,
    readings   INTEGER NOT NULL,
    PRIMARY KEY (day, meter_id)
) WITHOUT ROWID;
-- Schema 3 indexed (day, energy_wh) for the dashboards' top consumers; they read
-- day_total_columns now, and the index cost every close 1.4 M more entries.
DROP INDEX IF EXISTS daily_totals_energy;

-- Each closed day's daily totals as columns, one row per day (storage/totalcolumns.py):
-- meter_ids ascending little-endian int64; energy_wh and readings each little-endian in
-- the narrowest of uint8, uint32 and int64 that holds them. Written with the day's totals;
-- amended_totals lists the meters whose total a late reading changed since.
CREATE TABLE IF NOT EXISTS day_total_columns (
    day        INTEGER PRIMARY KEY,
    meter_ids  BLOB    NOT NULL,
    energy_wh  BLOB    NOT NULL,
    readings   BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS amended_totals (
    day        INTEGER NOT NULL,
    meter_id   INTEGER NOT NULL,
    PRIMARY KEY (day, meter_id)
) WITHOUT ROWID;

-- A meter's first day follows its earliest row of day_readings (an INSERT OR REPLACE is
-- an insert too; rows are never moved to another day). Totals without readings (imports)
-- set it where they are written (storage/sqlite_days.py): a trigger on daily_totals would
-- run for each of the close's 1.4 M totals, whose meters already have readings that day.
CREATE TRIGGER IF NOT EXISTS day_readings_first_day AFTER INSERT ON day_readings BEGIN
    UPDATE meters SET first_day = NEW.day
    WHERE meter_id = NEW.meter_id AND (first_day IS NULL OR first_day > NEW.day);
END;
DROP TRIGGER IF EXISTS daily_totals_first_day;

-- Per region and closed day, kept in step with daily_totals for the dashboards.
CREATE TABLE IF NOT EXISTS region_daily (
    region     TEXT    NOT NULL,
    day        TEXT    NOT NULL,
    energy_wh  INTEGER NOT NULL,
    meters     INTEGER NOT NULL,
    readings   INTEGER NOT NULL,
    PRIMARY KEY (region, day)
) WITHOUT ROWID;

-- Per region and closed day, each half hour summed over the region's meters:
-- slots_wh 48 little-endian int64 [Wh], readings 48 little-endian int32.
CREATE TABLE IF NOT EXISTS region_slots (
    region     TEXT    NOT NULL,
    day        TEXT    NOT NULL,
    slots_wh   BLOB    NOT NULL,
    readings   BLOB    NOT NULL,
    PRIMARY KEY (region, day)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS closed_days (
    day        TEXT PRIMARY KEY,
    closed_at  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS meta (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL
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
