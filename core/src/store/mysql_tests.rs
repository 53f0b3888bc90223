//! The MySQL store's DDL, printed whole: what an operator would read
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
            CREATE TABLE IF NOT EXISTS `app`.`switchyard_store_version` (
                `singleton` TINYINT NOT NULL DEFAULT 1 PRIMARY KEY CHECK (`singleton` = 1),
                `version` INT UNSIGNED NOT NULL
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

            CREATE TABLE IF NOT EXISTS `app`.`switchyard_repair_queue` (
                `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                `migration` VARCHAR(255) NOT NULL,
                `key` LONGTEXT NOT NULL CHECK (JSON_VALID(`key`)),
                `source` VARCHAR(32) NOT NULL CHECK (`source` IN ('proxy_unparsed', 'cascade_or_function', 'direct_client', 'mirror_failed')),
                `reason` TEXT NULL,
                `queued_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                KEY `switchyard_repair_queue_migration_id` (`migration`, `id`)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

            CREATE TABLE IF NOT EXISTS `app`.`switchyard_outbox` (
                `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                `migration` VARCHAR(255) NOT NULL,
                `key` LONGTEXT NOT NULL CHECK (JSON_VALID(`key`)),
                `queued_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                KEY `switchyard_outbox_migration_id` (`migration`, `id`)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

            CREATE TABLE IF NOT EXISTS `app`.`switchyard_state` (
                `migration` VARCHAR(255) NOT NULL PRIMARY KEY,
                `phase` VARCHAR(32) NOT NULL CHECK (`phase` IN ('planned', 'dual_write', 'backfill', 'validate', 'read_ramp', 'reads_on_target', 'write_switch', 'complete', 'rolled_back')),
                `epoch` BIGINT UNSIGNED NOT NULL,
                `read_rule` LONGTEXT NULL CHECK (JSON_VALID(`read_rule`)),
                `share_bp` SMALLINT UNSIGNED NOT NULL DEFAULT 0 CHECK (`share_bp` <= 10000),
                `paused` BOOLEAN NOT NULL DEFAULT FALSE,
                `pending_approval_bp` SMALLINT UNSIGNED NULL CHECK (`pending_approval_bp` <= 10000),
                `holding_writes` BOOLEAN NOT NULL DEFAULT FALSE,
                `rollback_reason` TEXT NULL,
                `updated_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

            CREATE TABLE IF NOT EXISTS `app`.`switchyard_events` (
                `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                `migration` VARCHAR(255) NOT NULL,
                `at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                `actor` VARCHAR(255) NOT NULL,
                `action` VARCHAR(64) NOT NULL,
                `from_phase` VARCHAR(32) NULL CHECK (`from_phase` IN ('planned', 'dual_write', 'backfill', 'validate', 'read_ramp', 'reads_on_target', 'write_switch', 'complete', 'rolled_back')),
                `to_phase` VARCHAR(32) NULL CHECK (`to_phase` IN ('planned', 'dual_write', 'backfill', 'validate', 'read_ramp', 'reads_on_target', 'write_switch', 'complete', 'rolled_back')),
                `reason` TEXT NULL,
                `detail` LONGTEXT NOT NULL CHECK (JSON_VALID(`detail`)),
                KEY `switchyard_events_migration_id` (`migration`, `id`)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

            CREATE TABLE IF NOT EXISTS `app`.`switchyard_proxy_stats` (
                `migration` VARCHAR(255) NOT NULL,
                `proxy` VARCHAR(255) NOT NULL,
                `epoch` BIGINT UNSIGNED NOT NULL,
                `enforced_since` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                `heartbeat_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                `target_reads` BIGINT UNSIGNED NOT NULL DEFAULT 0,
                `source_reads` BIGINT UNSIGNED NOT NULL DEFAULT 0,
                `target_errors` BIGINT UNSIGNED NOT NULL DEFAULT 0,
                `source_errors` BIGINT UNSIGNED NOT NULL DEFAULT 0,
                PRIMARY KEY (`migration`, `proxy`)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

            ALTER TABLE `app`.`switchyard_proxy_stats` ADD COLUMN IF NOT EXISTS `shadow_compared` BIGINT UNSIGNED NOT NULL DEFAULT 0, ADD COLUMN IF NOT EXISTS `shadow_mismatches` BIGINT UNSIGNED NOT NULL DEFAULT 0;

            CREATE TABLE IF NOT EXISTS `app`.`switchyard_controller_lease` (
                `singleton` TINYINT NOT NULL DEFAULT 1 PRIMARY KEY CHECK (`singleton` = 1),
                `holder` VARCHAR(255) NOT NULL,
                `expires_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

            INSERT INTO `app`.`switchyard_store_version` (`singleton`, `version`) VALUES (1, 3) ON DUPLICATE KEY UPDATE `version` = GREATEST(`version`, VALUES(`version`))"#]],
    );
    expect!["SELECT `version` FROM `app`.`switchyard_store_version`"]
        .assert_eq(&version_query("app"));
}

#[test]
fn guard_for_a_composite_key() {
    with_guard(|g| {
        check(
            install_guard(g),
            expect![[r#"
                DROP TRIGGER IF EXISTS `app`.`switchyard_guard_order_lines_v2_insert`;

                DROP TRIGGER IF EXISTS `app`.`switchyard_guard_order_lines_v2_update`;

                DROP TRIGGER IF EXISTS `app`.`switchyard_guard_order_lines_v2_delete`;

                CREATE TRIGGER `app`.`switchyard_guard_order_lines_v2_insert` AFTER INSERT ON `app`.`order_lines` FOR EACH ROW
                BEGIN
                    IF @switchyard_mirrored <=> 'order_lines_v2' THEN
                        SET @switchyard_keys = CONCAT_WS(',', @switchyard_keys, JSON_ARRAY(CAST(NEW.`order_id` AS CHAR CHARACTER SET utf8mb4), CAST(NEW.`line` AS CHAR CHARACTER SET utf8mb4)));
                    ELSE
                        INSERT INTO `app`.`switchyard_repair_queue` (`migration`, `key`, `source`) VALUES ('order_lines_v2', JSON_ARRAY(CAST(NEW.`order_id` AS CHAR CHARACTER SET utf8mb4), CAST(NEW.`line` AS CHAR CHARACTER SET utf8mb4)), IF(@switchyard_proxy <=> 1, 'proxy_unparsed', 'direct_client'));
                    END IF;
                END;

                CREATE TRIGGER `app`.`switchyard_guard_order_lines_v2_update` AFTER UPDATE ON `app`.`order_lines` FOR EACH ROW
                BEGIN
                    IF @switchyard_mirrored <=> 'order_lines_v2' THEN
                        SET @switchyard_keys = CONCAT_WS(',', @switchyard_keys, JSON_ARRAY(CAST(OLD.`order_id` AS CHAR CHARACTER SET utf8mb4), CAST(OLD.`line` AS CHAR CHARACTER SET utf8mb4)));
                        IF CAST(JSON_ARRAY(CAST(OLD.`order_id` AS CHAR CHARACTER SET utf8mb4), CAST(OLD.`line` AS CHAR CHARACTER SET utf8mb4)) AS BINARY) <> CAST(JSON_ARRAY(CAST(NEW.`order_id` AS CHAR CHARACTER SET utf8mb4), CAST(NEW.`line` AS CHAR CHARACTER SET utf8mb4)) AS BINARY) THEN
                            SET @switchyard_keys = CONCAT_WS(',', @switchyard_keys, JSON_ARRAY(CAST(NEW.`order_id` AS CHAR CHARACTER SET utf8mb4), CAST(NEW.`line` AS CHAR CHARACTER SET utf8mb4)));
                        END IF;
                    ELSE
                        INSERT INTO `app`.`switchyard_repair_queue` (`migration`, `key`, `source`) VALUES ('order_lines_v2', JSON_ARRAY(CAST(OLD.`order_id` AS CHAR CHARACTER SET utf8mb4), CAST(OLD.`line` AS CHAR CHARACTER SET utf8mb4)), IF(@switchyard_proxy <=> 1, 'proxy_unparsed', 'direct_client'));
                        IF CAST(JSON_ARRAY(CAST(OLD.`order_id` AS CHAR CHARACTER SET utf8mb4), CAST(OLD.`line` AS CHAR CHARACTER SET utf8mb4)) AS BINARY) <> CAST(JSON_ARRAY(CAST(NEW.`order_id` AS CHAR CHARACTER SET utf8mb4), CAST(NEW.`line` AS CHAR CHARACTER SET utf8mb4)) AS BINARY) THEN
                            INSERT INTO `app`.`switchyard_repair_queue` (`migration`, `key`, `source`) VALUES ('order_lines_v2', JSON_ARRAY(CAST(NEW.`order_id` AS CHAR CHARACTER SET utf8mb4), CAST(NEW.`line` AS CHAR CHARACTER SET utf8mb4)), IF(@switchyard_proxy <=> 1, 'proxy_unparsed', 'direct_client'));
                        END IF;
                    END IF;
                END;

                CREATE TRIGGER `app`.`switchyard_guard_order_lines_v2_delete` AFTER DELETE ON `app`.`order_lines` FOR EACH ROW
                BEGIN
                    IF @switchyard_mirrored <=> 'order_lines_v2' THEN
                        SET @switchyard_keys = CONCAT_WS(',', @switchyard_keys, JSON_ARRAY(CAST(OLD.`order_id` AS CHAR CHARACTER SET utf8mb4), CAST(OLD.`line` AS CHAR CHARACTER SET utf8mb4)));
                    ELSE
                        INSERT INTO `app`.`switchyard_repair_queue` (`migration`, `key`, `source`) VALUES ('order_lines_v2', JSON_ARRAY(CAST(OLD.`order_id` AS CHAR CHARACTER SET utf8mb4), CAST(OLD.`line` AS CHAR CHARACTER SET utf8mb4)), IF(@switchyard_proxy <=> 1, 'proxy_unparsed', 'direct_client'));
                    END IF;
                END"#]],
        )
    });
}

#[test]
fn guard_removal() {
    with_guard(|g| {
        check(
            drop_guard(g),
            expect![[r#"
        DROP TRIGGER IF EXISTS `app`.`switchyard_guard_order_lines_v2_insert`;

        DROP TRIGGER IF EXISTS `app`.`switchyard_guard_order_lines_v2_update`;

        DROP TRIGGER IF EXISTS `app`.`switchyard_guard_order_lines_v2_delete`"#]],
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
            SET @switchyard_mirrored = 'order_lines_v2', @switchyard_keys = NULL;

            SET @switchyard_mirrored = NULL, @switchyard_keys = NULL;

            SET @switchyard_proxy = 1"#]],
    );
}

#[test]
fn odd_names_stay_quoted() {
    let key = ["Id".to_string()];
    let guard = Guard {
        migration: "m.1-a",
        store: "Sch`ema",
        schema: "Sch`ema",
        table: "we'ird\\ table",
        key: &key,
        on_target: false,
    };
    check(
        install_guard(&guard),
        expect![[r#"
            DROP TRIGGER IF EXISTS `Sch``ema`.`switchyard_guard_m.1-a_insert`;

            DROP TRIGGER IF EXISTS `Sch``ema`.`switchyard_guard_m.1-a_update`;

            DROP TRIGGER IF EXISTS `Sch``ema`.`switchyard_guard_m.1-a_delete`;

            CREATE TRIGGER `Sch``ema`.`switchyard_guard_m.1-a_insert` AFTER INSERT ON `Sch``ema`.`we'ird\ table` FOR EACH ROW
            BEGIN
                IF @switchyard_mirrored <=> 'm.1-a' THEN
                    SET @switchyard_keys = CONCAT_WS(',', @switchyard_keys, JSON_ARRAY(CAST(NEW.`Id` AS CHAR CHARACTER SET utf8mb4)));
                ELSE
                    INSERT INTO `Sch``ema`.`switchyard_repair_queue` (`migration`, `key`, `source`) VALUES ('m.1-a', JSON_ARRAY(CAST(NEW.`Id` AS CHAR CHARACTER SET utf8mb4)), IF(@switchyard_proxy <=> 1, 'proxy_unparsed', 'direct_client'));
                END IF;
            END;

            CREATE TRIGGER `Sch``ema`.`switchyard_guard_m.1-a_update` AFTER UPDATE ON `Sch``ema`.`we'ird\ table` FOR EACH ROW
            BEGIN
                IF @switchyard_mirrored <=> 'm.1-a' THEN
                    SET @switchyard_keys = CONCAT_WS(',', @switchyard_keys, JSON_ARRAY(CAST(OLD.`Id` AS CHAR CHARACTER SET utf8mb4)));
                    IF CAST(JSON_ARRAY(CAST(OLD.`Id` AS CHAR CHARACTER SET utf8mb4)) AS BINARY) <> CAST(JSON_ARRAY(CAST(NEW.`Id` AS CHAR CHARACTER SET utf8mb4)) AS BINARY) THEN
                        SET @switchyard_keys = CONCAT_WS(',', @switchyard_keys, JSON_ARRAY(CAST(NEW.`Id` AS CHAR CHARACTER SET utf8mb4)));
                    END IF;
                ELSE
                    INSERT INTO `Sch``ema`.`switchyard_repair_queue` (`migration`, `key`, `source`) VALUES ('m.1-a', JSON_ARRAY(CAST(OLD.`Id` AS CHAR CHARACTER SET utf8mb4)), IF(@switchyard_proxy <=> 1, 'proxy_unparsed', 'direct_client'));
                    IF CAST(JSON_ARRAY(CAST(OLD.`Id` AS CHAR CHARACTER SET utf8mb4)) AS BINARY) <> CAST(JSON_ARRAY(CAST(NEW.`Id` AS CHAR CHARACTER SET utf8mb4)) AS BINARY) THEN
                        INSERT INTO `Sch``ema`.`switchyard_repair_queue` (`migration`, `key`, `source`) VALUES ('m.1-a', JSON_ARRAY(CAST(NEW.`Id` AS CHAR CHARACTER SET utf8mb4)), IF(@switchyard_proxy <=> 1, 'proxy_unparsed', 'direct_client'));
                    END IF;
                END IF;
            END;

            CREATE TRIGGER `Sch``ema`.`switchyard_guard_m.1-a_delete` AFTER DELETE ON `Sch``ema`.`we'ird\ table` FOR EACH ROW
            BEGIN
                IF @switchyard_mirrored <=> 'm.1-a' THEN
                    SET @switchyard_keys = CONCAT_WS(',', @switchyard_keys, JSON_ARRAY(CAST(OLD.`Id` AS CHAR CHARACTER SET utf8mb4)));
                ELSE
                    INSERT INTO `Sch``ema`.`switchyard_repair_queue` (`migration`, `key`, `source`) VALUES ('m.1-a', JSON_ARRAY(CAST(OLD.`Id` AS CHAR CHARACTER SET utf8mb4)), IF(@switchyard_proxy <=> 1, 'proxy_unparsed', 'direct_client'));
                END IF;
            END"#]],
    );
}
