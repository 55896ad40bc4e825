-- Master database (seed 1.4), PostgreSQL flavour: the same tables as schema.sql.
-- In the large tables a day is an integer, days since 1970-01-01 (metermatrix.storage
-- .packing.day_number); in the small ones it is a date. Slots are 0..47; energy is
-- integer watt-hours. Every table that grows with the fleet has the meter id first in
-- its key: it is the distribution key for a Citus-style sharding extension (README).

CREATE TABLE IF NOT EXISTS meters (
    meter_id   bigint PRIMARY KEY,
    name       text,
    fin_no     text,
    region     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- First day with a reading or a daily total (day number; NULL: none yet), kept by
    -- the triggers at the end of this file.
    first_day  integer
);
CREATE INDEX IF NOT EXISTS meters_region ON meters (region);

-- One row per meter and day, packed as in SQLite (storage/packing.py): slots_wh is 48
-- little-endian uint16 [Wh] with 0xFFFF for a missing half hour, marks 2 bits per slot.
-- Partitioned by month of day (partitions are made ahead by the server, see
-- storage/postgres_days.py); the open day's rows are rewritten by the group commits,
-- hence the room left in each page for updates in place.
CREATE TABLE IF NOT EXISTS day_readings (
    meter_id   bigint  NOT NULL,
    day        integer NOT NULL,
    slots_wh   bytea   NOT NULL CHECK (length(slots_wh) = 96),
    marks      bytea   NOT NULL CHECK (length(marks) = 12),
    PRIMARY KEY (meter_id, day)
) PARTITION BY RANGE (day);
CREATE INDEX IF NOT EXISTS day_readings_day ON day_readings (day);

-- One row per meter and closed day, partitioned by month like day_readings.
CREATE TABLE IF NOT EXISTS daily_totals (
    meter_id   bigint  NOT NULL,
    day        integer NOT NULL,
    energy_wh  bigint  NOT NULL,
    readings   integer NOT NULL,
    PRIMARY KEY (meter_id, day)
) PARTITION BY RANGE (day);
CREATE INDEX IF NOT EXISTS daily_totals_day ON daily_totals (day);

-- Per region and closed day (small: reference tables under Citus).
CREATE TABLE IF NOT EXISTS region_daily (
    region     text    NOT NULL,
    day        date    NOT NULL,
    energy_wh  bigint  NOT NULL,
    meters     integer NOT NULL,
    readings   bigint  NOT NULL,
    PRIMARY KEY (region, day)
);

-- Per region and closed day, each half hour summed over the region's meters:
-- slots_wh 48 little-endian int64 [Wh], readings 48 little-endian int32.
CREATE TABLE IF NOT EXISTS region_slots (
    region     text  NOT NULL,
    day        date  NOT NULL,
    slots_wh   bytea NOT NULL,
    readings   bytea NOT NULL,
    PRIMARY KEY (region, day)
);

CREATE TABLE IF NOT EXISTS closed_days (
    day        date PRIMARY KEY,
    closed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS meta (
    key        text PRIMARY KEY,
    value      text NOT NULL
);

CREATE TABLE IF NOT EXISTS residents (
    meter_id      bigint PRIMARY KEY,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS managers (
    username      text PRIMARY KEY,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sessions (
    session_id   text PRIMARY KEY,
    "user"       text NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions ("user");
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires_at);

CREATE TABLE IF NOT EXISTS login_attempts (
    key            text PRIMARY KEY,
    attempts       integer NOT NULL,
    last_attempt_s double precision NOT NULL
);

-- A packed row with the missing half hours of ``old`` filled from ``new``: a reading
-- once stored is never replaced, whichever process writes the row.
CREATE OR REPLACE FUNCTION metermatrix_merge_slots(old bytea, new bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN old = new THEN old ELSE (
    SELECT string_agg(CASE WHEN substr(old, 2 * s + 1, 2) = '\xffff'::bytea
                           THEN substr(new, 2 * s + 1, 2) ELSE substr(old, 2 * s + 1, 2) END,
                      ''::bytea ORDER BY s)
    FROM generate_series(0, 47) AS s) END
$$;

-- A meter's first day follows its earliest row of day_readings or daily_totals: one
-- UPDATE per inserting statement, of the meters whose first day moves.
CREATE OR REPLACE FUNCTION metermatrix_note_first_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE meters AS m SET first_day = found.day
  FROM (SELECT meter_id, MIN(day) AS day FROM new_rows GROUP BY meter_id) AS found
  WHERE m.meter_id = found.meter_id AND (m.first_day IS NULL OR m.first_day > found.day);
  RETURN NULL;
END $$;

-- An older database: add the column and fill it from the rows stored, in this script's
-- transaction; then the triggers and the index.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = 'meters'
                   AND column_name = 'first_day') THEN
    ALTER TABLE meters ADD COLUMN first_day integer;
    UPDATE meters AS m SET first_day = found.day
    FROM (SELECT meter_id, MIN(day) AS day FROM (
            SELECT meter_id, day FROM day_readings
            UNION ALL SELECT meter_id, day FROM daily_totals) AS stored
          GROUP BY meter_id) AS found
    WHERE m.meter_id = found.meter_id;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'day_readings_first_day') THEN
    CREATE TRIGGER day_readings_first_day AFTER INSERT ON day_readings
      REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
      EXECUTE FUNCTION metermatrix_note_first_days();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'daily_totals_first_day') THEN
    CREATE TRIGGER daily_totals_first_day AFTER INSERT ON daily_totals
      REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
      EXECUTE FUNCTION metermatrix_note_first_days();
  END IF;
END $$;
CREATE INDEX IF NOT EXISTS meters_region_first_day ON meters (region, first_day);
-- An index of earlier releases: every close wrote 1.4 M entries to it for the dashboards'
-- top consumers, which sum each closed day's totals instead (metermatrix/topmeters.py).
DROP INDEX IF EXISTS daily_totals_energy;

INSERT INTO meta (key, value) VALUES ('database_id', md5(random()::text || clock_timestamp()))
ON CONFLICT (key) DO NOTHING;
