"""The workspace database schema as an ordered list of migrations.

The schema version is SQLite's ``PRAGMA user_version``. A migration is never edited once it has
been released: change the schema by appending a new one. Arrays (landmarks, transforms,
embeddings) are stored as little-endian float32/float64 BLOBs with their shape implied by the
column, never pickled, so a workspace is safe to share.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: first release
    """
    CREATE TABLE clips (
        id            INTEGER PRIMARY KEY,
        path          TEXT NOT NULL,
        content_hash  TEXT NOT NULL UNIQUE,
        kind          TEXT NOT NULL CHECK (kind IN ('video', 'images', 'image')),
        width         INTEGER NOT NULL,
        height        INTEGER NOT NULL,
        fps           REAL NOT NULL,
        frame_count   INTEGER NOT NULL,
        duration      REAL NOT NULL,
        has_audio     INTEGER NOT NULL,
        added_at      TEXT NOT NULL
    );
    CREATE TABLE identities (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        created_at  TEXT NOT NULL
    );
    -- One row per (clip, identity, frame) examined by extraction: found or not.
    CREATE TABLE frames (
        clip_id      INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
        identity_id  INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        frame_index  INTEGER NOT NULL,
        time         REAL NOT NULL,
        status       TEXT NOT NULL CHECK (status IN ('face', 'no_face')),
        PRIMARY KEY (clip_id, identity_id, frame_index)
    );
    CREATE TABLE tracks (
        id           INTEGER PRIMARY KEY,
        clip_id      INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
        identity_id  INTEGER REFERENCES identities(id) ON DELETE SET NULL,
        first_frame  INTEGER NOT NULL,
        last_frame   INTEGER NOT NULL,
        length       INTEGER NOT NULL,
        embedding    BLOB,          -- float32[D], mean identity embedding of the track
        similarity   REAL           -- to the --person reference, when one was given
    );
    CREATE TABLE faces (
        id                INTEGER PRIMARY KEY,
        identity_id       INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        clip_id           INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
        track_id          INTEGER REFERENCES tracks(id) ON DELETE SET NULL,
        frame_index       INTEGER NOT NULL,
        time              REAL NOT NULL,
        x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
        det_score         REAL NOT NULL,
        landmarks         BLOB NOT NULL,  -- float32[N, 2], frame pixels, 68-point order first
        landmarks_smooth  BLOB NOT NULL,  -- float32[N, 2], temporally filtered copy
        landmark_score    REAL,           -- backend confidence in [0, 1] where it gives one
        yaw REAL NOT NULL, pitch REAL NOT NULL, roll REAL NOT NULL,  -- degrees
        blur              REAL NOT NULL,  -- variance of the Laplacian of the aligned face
        embedding         BLOB,           -- float32[D] identity embedding, where computed
        transform         BLOB NOT NULL,  -- float64[2, 3], frame -> aligned face (smoothed)
        face_type         TEXT NOT NULL,
        size              INTEGER NOT NULL,
        aligned_path      TEXT NOT NULL,  -- relative to the workspace
        excluded          INTEGER NOT NULL DEFAULT 0,  -- pruned (reversible)
        exclude_reason    TEXT,
        UNIQUE (identity_id, clip_id, frame_index)
    );
    CREATE INDEX faces_identity ON faces(identity_id, excluded);
    CREATE INDEX faces_clip_frame ON faces(clip_id, frame_index);
    -- Who agreed to their likeness being used as a source, to what, on what basis.
    CREATE TABLE consents (
        id               INTEGER PRIMARY KEY,
        identity_id      INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        subject          TEXT NOT NULL,
        scope            TEXT NOT NULL,
        basis            TEXT NOT NULL,
        evidence_name    TEXT,
        evidence_sha256  TEXT,
        created_at       TEXT NOT NULL,
        record_hash      TEXT NOT NULL UNIQUE   -- sha256 of the canonical JSON of the record
    );
    CREATE TABLE models (
        id               INTEGER PRIMARY KEY,
        name             TEXT NOT NULL UNIQUE,
        path             TEXT NOT NULL,          -- relative to the workspace
        arch             TEXT NOT NULL,
        preset           TEXT,
        resolution       INTEGER NOT NULL,
        face_type        TEXT NOT NULL,
        src_identity_id  INTEGER REFERENCES identities(id) ON DELETE SET NULL,
        dst_identity_id  INTEGER REFERENCES identities(id) ON DELETE SET NULL,
        base_model       TEXT,
        step             INTEGER NOT NULL DEFAULT 0,
        created_at       TEXT NOT NULL,
        updated_at       TEXT NOT NULL
    );
    CREATE TABLE renders (
        id                 INTEGER PRIMARY KEY,
        uid                TEXT NOT NULL UNIQUE,     -- random id, carried in the watermark payload
        model_id           INTEGER REFERENCES models(id) ON DELETE SET NULL,
        clip_id            INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
        output_path        TEXT NOT NULL,
        settings           TEXT NOT NULL,            -- JSON, the resolved merge settings
        settings_hash      TEXT NOT NULL,
        watermark_payload  INTEGER,
        consent_hash       TEXT,
        status             TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
        created_at         TEXT NOT NULL,
        finished_at        TEXT
    );
    -- Per merged frame: what happened, and what review needs to rank glitches.
    CREATE TABLE render_frames (
        render_id       INTEGER NOT NULL REFERENCES renders(id) ON DELETE CASCADE,
        frame_index     INTEGER NOT NULL,
        status          TEXT NOT NULL CHECK (status IN ('swapped', 'passthrough', 'kept')),
        occlusion       REAL,
        shot_cut        INTEGER NOT NULL DEFAULT 0,
        glitch_score    REAL,
        glitch_reasons  TEXT,                        -- JSON
        PRIMARY KEY (render_id, frame_index)
    );
    -- Per-frame and per-range edits of the merge settings (inclusive range).
    CREATE TABLE overrides (
        id           INTEGER PRIMARY KEY,
        render_id    INTEGER NOT NULL REFERENCES renders(id) ON DELETE CASCADE,
        first_frame  INTEGER NOT NULL,
        last_frame   INTEGER NOT NULL,
        settings     TEXT NOT NULL,                  -- JSON, a partial settings object
        created_at   TEXT NOT NULL,
        CHECK (last_frame >= first_frame)
    );
    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY,
        kind        TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
        params      TEXT NOT NULL,   -- JSON
        result      TEXT,            -- JSON
        started_at  TEXT NOT NULL,
        finished_at TEXT
    );
    """,
    # 2: review's glitch scores get their own table, so a re-merge (which rewrites render_frames)
    # never erases them; the scores already stored move over.
    """
    CREATE TABLE glitch_scores (
        render_id    INTEGER NOT NULL REFERENCES renders(id) ON DELETE CASCADE,
        frame_index  INTEGER NOT NULL,
        score        REAL NOT NULL,
        reasons      TEXT NOT NULL,                  -- JSON list of {reason, z, value, usual}
        PRIMARY KEY (render_id, frame_index)
    );
    INSERT INTO glitch_scores (render_id, frame_index, score, reasons)
        SELECT render_id, frame_index, glitch_score, COALESCE(glitch_reasons, '[]') FROM render_frames
        WHERE glitch_score IS NOT NULL;
    ALTER TABLE render_frames DROP COLUMN glitch_score;
    ALTER TABLE render_frames DROP COLUMN glitch_reasons;
    """,
    # 3: a render may swap several people: renders.model_id is the first; the others, in the order they
    # are composited, with the destination person each replaces.
    """
    CREATE TABLE render_people (
        render_id  INTEGER NOT NULL REFERENCES renders(id) ON DELETE CASCADE,
        position   INTEGER NOT NULL CHECK (position >= 1),
        model_id   INTEGER REFERENCES models(id) ON DELETE SET NULL,
        identity   TEXT NOT NULL,                    -- the destination person this model replaces
        PRIMARY KEY (render_id, position)
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
