//! The PostgreSQL store's DDL, printed whole: what an operator would read
//! in the server's log.

use expect_test::{expect, Expect};

use super::*;

/// `app.order_lines`, keyed by (order_id, line), with the store in `app`.
fn with_guard(check: impl Fn(&Guard)) {
    let key = ["order_id".to_string(), "line".to_string()];
    check(&Guard {
        migration: "order_lines_v2",
        store: "app",
        schema: "app",
        table: "order_lines",
        key: &key,
        on_target: false,
    });
}

fn check(statements: Vec<String>, want: Expect) {
    want.assert_eq(&statements.join(";\n\n"));
}

#[test]
fn store_tables() {
    check(
        install("app"),
        expect![[r#"
            CREATE TABLE IF NOT EXISTS "app"."switchyard_store_version" (
                singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                version integer NOT NULL
            );

            CREATE TABLE IF NOT EXISTS "app"."switchyard_repair_queue" (
                id bigserial PRIMARY KEY,
                migration text NOT NULL,
                key jsonb NOT NULL CHECK (jsonb_typeof(key) = 'array'),
                source text NOT NULL CHECK (source IN ('proxy_unparsed', 'cascade_or_function', 'direct_client', 'mirror_failed')),
                reason text,
                queued_at timestamptz NOT NULL DEFAULT now()
            );

            CREATE INDEX IF NOT EXISTS "switchyard_repair_queue_migration_id" ON "app"."switchyard_repair_queue" (migration, id);

            CREATE TABLE IF NOT EXISTS "app"."switchyard_outbox" (
                id bigserial PRIMARY KEY,
                migration text NOT NULL,
                key jsonb NOT NULL CHECK (jsonb_typeof(key) = 'array'),
                queued_at timestamptz NOT NULL DEFAULT now()
            );

            CREATE INDEX IF NOT EXISTS "switchyard_outbox_migration_id" ON "app"."switchyard_outbox" (migration, id);

            CREATE TABLE IF NOT EXISTS "app"."switchyard_state" (
                migration text PRIMARY KEY,
                phase text NOT NULL CHECK (phase IN ('planned', 'dual_write', 'backfill', 'validate', 'read_ramp', 'reads_on_target', 'write_switch', 'complete', 'rolled_back')),
                epoch bigint NOT NULL CHECK (epoch >= 0),
                read_rule jsonb CHECK (jsonb_typeof(read_rule) = 'object'),
                share_bp integer NOT NULL DEFAULT 0 CHECK (share_bp BETWEEN 0 AND 10000),
                paused boolean NOT NULL DEFAULT false,
                pending_approval_bp integer CHECK (pending_approval_bp BETWEEN 0 AND 10000),
                holding_writes boolean NOT NULL DEFAULT false,
                rollback_reason text,
                updated_at timestamptz NOT NULL DEFAULT now()
            );

            CREATE TABLE IF NOT EXISTS "app"."switchyard_events" (
                id bigserial PRIMARY KEY,
                migration text NOT NULL,
                at timestamptz NOT NULL DEFAULT now(),
                actor text NOT NULL,
                action text NOT NULL,
                from_phase text CHECK (from_phase IN ('planned', 'dual_write', 'backfill', 'validate', 'read_ramp', 'reads_on_target', 'write_switch', 'complete', 'rolled_back')),
                to_phase text CHECK (to_phase IN ('planned', 'dual_write', 'backfill', 'validate', 'read_ramp', 'reads_on_target', 'write_switch', 'complete', 'rolled_back')),
                reason text,
                detail jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(detail) = 'object')
            );

            CREATE TABLE IF NOT EXISTS "app"."switchyard_proxy_stats" (
                migration text NOT NULL,
                proxy text NOT NULL,
                epoch bigint NOT NULL CHECK (epoch >= 0),
                enforced_since timestamptz NOT NULL DEFAULT now(),
                heartbeat_at timestamptz NOT NULL DEFAULT now(),
                target_reads bigint NOT NULL DEFAULT 0,
                source_reads bigint NOT NULL DEFAULT 0,
                target_errors bigint NOT NULL DEFAULT 0,
                source_errors bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (migration, proxy)
            );

            ALTER TABLE "app"."switchyard_proxy_stats" ADD COLUMN IF NOT EXISTS shadow_compared bigint NOT NULL DEFAULT 0, ADD COLUMN IF NOT EXISTS shadow_mismatches bigint NOT NULL DEFAULT 0;

            CREATE TABLE IF NOT EXISTS "app"."switchyard_controller_lease" (
                singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                holder text NOT NULL,
                expires_at timestamptz NOT NULL
            );

            CREATE INDEX IF NOT EXISTS "switchyard_events_migration_id" ON "app"."switchyard_events" (migration, id);

            INSERT INTO "app"."switchyard_store_version" AS v (version) VALUES (3) ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version WHERE v.version < EXCLUDED.version"#]],
    );
    expect![[r#"SELECT version FROM "app"."switchyard_store_version""#]]
        .assert_eq(&version_query("app"));
}

#[test]
fn guard_for_a_composite_key() {
    with_guard(|g| {
        check(
            install_guard(g),
            expect![[r#"
                CREATE OR REPLACE FUNCTION "app"."switchyard_guard_order_lines_v2"() RETURNS trigger
                LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
                AS $switchyard$
                DECLARE
                    origin text;
                BEGIN
                    IF pg_trigger_depth() > 1
                        OR (coalesce(current_setting('switchyard.mirrored', true), '') <> E'order_lines_v2'
                            AND strpos(coalesce(current_query(), ''), E'/* switchyard mirrored order_lines_v2 */') = 0) THEN
                        origin := CASE
                            WHEN pg_trigger_depth() > 1 THEN 'cascade_or_function'
                            WHEN current_setting('switchyard.proxy', true) = 'on' THEN 'proxy_unparsed'
                            ELSE 'direct_client'
                        END;
                        IF TG_WHEN = 'BEFORE' THEN
                            INSERT INTO "app"."switchyard_repair_queue" (migration, key, source) VALUES (E'order_lines_v2', jsonb_build_array(OLD."order_id"::text, OLD."line"::text), origin);
                        ELSE
                            INSERT INTO "app"."switchyard_repair_queue" (migration, key, source) VALUES (E'order_lines_v2', jsonb_build_array(NEW."order_id"::text, NEW."line"::text), origin);
                        END IF;
                    END IF;
                    IF TG_OP = 'DELETE' THEN
                        RETURN OLD;
                    END IF;
                    RETURN NEW;
                END
                $switchyard$;

                DROP TRIGGER IF EXISTS "switchyard_guard_order_lines_v2_before" ON "app"."order_lines";

                CREATE TRIGGER "switchyard_guard_order_lines_v2_before" BEFORE UPDATE OR DELETE ON "app"."order_lines" FOR EACH ROW WHEN (NOT (pg_trigger_depth() = 0 AND (coalesce(current_setting('switchyard.mirrored', true), '') = E'order_lines_v2' OR strpos(coalesce(current_query(), ''), E'/* switchyard mirrored order_lines_v2 */') > 0))) EXECUTE FUNCTION "app"."switchyard_guard_order_lines_v2"();

                DROP TRIGGER IF EXISTS "switchyard_guard_order_lines_v2_insert" ON "app"."order_lines";

                CREATE TRIGGER "switchyard_guard_order_lines_v2_insert" AFTER INSERT ON "app"."order_lines" FOR EACH ROW WHEN (NOT (pg_trigger_depth() = 0 AND (coalesce(current_setting('switchyard.mirrored', true), '') = E'order_lines_v2' OR strpos(coalesce(current_query(), ''), E'/* switchyard mirrored order_lines_v2 */') > 0))) EXECUTE FUNCTION "app"."switchyard_guard_order_lines_v2"();

                DROP TRIGGER IF EXISTS "switchyard_guard_order_lines_v2_rekey" ON "app"."order_lines";

                CREATE TRIGGER "switchyard_guard_order_lines_v2_rekey" AFTER UPDATE ON "app"."order_lines" FOR EACH ROW WHEN ((OLD."order_id"::text, OLD."line"::text) IS DISTINCT FROM (NEW."order_id"::text, NEW."line"::text) AND NOT (pg_trigger_depth() = 0 AND (coalesce(current_setting('switchyard.mirrored', true), '') = E'order_lines_v2' OR strpos(coalesce(current_query(), ''), E'/* switchyard mirrored order_lines_v2 */') > 0))) EXECUTE FUNCTION "app"."switchyard_guard_order_lines_v2"()"#]],
        )
    });
}

#[test]
fn guard_removal() {
    with_guard(|g| {
        check(
            drop_guard(g),
            expect![[r#"
        DROP TRIGGER IF EXISTS "switchyard_guard_order_lines_v2_before" ON "app"."order_lines";

        DROP TRIGGER IF EXISTS "switchyard_guard_order_lines_v2_insert" ON "app"."order_lines";

        DROP TRIGGER IF EXISTS "switchyard_guard_order_lines_v2_rekey" ON "app"."order_lines";

        DROP FUNCTION IF EXISTS "app"."switchyard_guard_order_lines_v2"()"#]],
        )
    });
}

#[test]
fn markers() {
    check(
        vec![
            mark_mirrored("order_lines_v2"),
            unmark_mirrored(),
            mark_proxy_session(),
        ],
        expect![[r#"
            SELECT set_config('switchyard.mirrored', E'order_lines_v2', true);

            SELECT set_config('switchyard.mirrored', '', true);

            SET switchyard.proxy = 'on'"#]],
    );
}

#[test]
fn odd_names_stay_quoted() {
    let key = ["I$switchyard$d".to_string()];
    let guard = Guard {
        migration: "m.1-a",
        store: "Sch\"ema",
        schema: "Sch\"ema",
        table: "we'ird table",
        key: &key,
        on_target: false,
    };
    check(
        install_guard(&guard),
        expect![[r#"
            CREATE OR REPLACE FUNCTION "Sch""ema"."switchyard_guard_m.1-a"() RETURNS trigger
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
            AS $switchyard1$
            DECLARE
                origin text;
            BEGIN
                IF pg_trigger_depth() > 1
                    OR (coalesce(current_setting('switchyard.mirrored', true), '') <> E'm.1-a'
                        AND strpos(coalesce(current_query(), ''), E'/* switchyard mirrored m.1-a */') = 0) THEN
                    origin := CASE
                        WHEN pg_trigger_depth() > 1 THEN 'cascade_or_function'
                        WHEN current_setting('switchyard.proxy', true) = 'on' THEN 'proxy_unparsed'
                        ELSE 'direct_client'
                    END;
                    IF TG_WHEN = 'BEFORE' THEN
                        INSERT INTO "Sch""ema"."switchyard_repair_queue" (migration, key, source) VALUES (E'm.1-a', jsonb_build_array(OLD."I$switchyard$d"::text), origin);
                    ELSE
                        INSERT INTO "Sch""ema"."switchyard_repair_queue" (migration, key, source) VALUES (E'm.1-a', jsonb_build_array(NEW."I$switchyard$d"::text), origin);
                    END IF;
                END IF;
                IF TG_OP = 'DELETE' THEN
                    RETURN OLD;
                END IF;
                RETURN NEW;
            END
            $switchyard1$;

            DROP TRIGGER IF EXISTS "switchyard_guard_m.1-a_before" ON "Sch""ema"."we'ird table";

            CREATE TRIGGER "switchyard_guard_m.1-a_before" BEFORE UPDATE OR DELETE ON "Sch""ema"."we'ird table" FOR EACH ROW WHEN (NOT (pg_trigger_depth() = 0 AND (coalesce(current_setting('switchyard.mirrored', true), '') = E'm.1-a' OR strpos(coalesce(current_query(), ''), E'/* switchyard mirrored m.1-a */') > 0))) EXECUTE FUNCTION "Sch""ema"."switchyard_guard_m.1-a"();

            DROP TRIGGER IF EXISTS "switchyard_guard_m.1-a_insert" ON "Sch""ema"."we'ird table";

            CREATE TRIGGER "switchyard_guard_m.1-a_insert" AFTER INSERT ON "Sch""ema"."we'ird table" FOR EACH ROW WHEN (NOT (pg_trigger_depth() = 0 AND (coalesce(current_setting('switchyard.mirrored', true), '') = E'm.1-a' OR strpos(coalesce(current_query(), ''), E'/* switchyard mirrored m.1-a */') > 0))) EXECUTE FUNCTION "Sch""ema"."switchyard_guard_m.1-a"();

            DROP TRIGGER IF EXISTS "switchyard_guard_m.1-a_rekey" ON "Sch""ema"."we'ird table";

            CREATE TRIGGER "switchyard_guard_m.1-a_rekey" AFTER UPDATE ON "Sch""ema"."we'ird table" FOR EACH ROW WHEN ((OLD."I$switchyard$d"::text) IS DISTINCT FROM (NEW."I$switchyard$d"::text) AND NOT (pg_trigger_depth() = 0 AND (coalesce(current_setting('switchyard.mirrored', true), '') = E'm.1-a' OR strpos(coalesce(current_query(), ''), E'/* switchyard mirrored m.1-a */') > 0))) EXECUTE FUNCTION "Sch""ema"."switchyard_guard_m.1-a"()"#]],
    );
}
