//! The control tables' statements on both engines, printed whole: what an
//! operator would read in the server's log.

use std::time::Duration;

use expect_test::{expect, Expect};

use super::*;

/// `api_v2` ramping at 25% with a runtime rule and a step to approve.
fn row() -> StateRow<'static> {
    StateRow {
        migration: "api_v2",
        phase: Phase::ReadRamp,
        epoch: 5,
        read_rule: Some(r#"{"strategy": "percentage", "percent": 25}"#),
        share: Percent::from_basis_points(2_500).unwrap(),
        paused: false,
        pending_approval: Percent::from_basis_points(5_000),
        holding_writes: false,
        rollback_reason: None,
    }
}

/// An operator's rollback, with a quote in its reason.
fn event() -> AuditEvent<'static> {
    AuditEvent {
        migration: "api_v2",
        actor: "ops@bastion",
        action: "rollback",
        from: Some(Phase::ReadRamp),
        to: Some(Phase::RolledBack),
        reason: Some("it's slow"),
        detail: "{}",
    }
}

fn beat() -> Heartbeat<'static> {
    Heartbeat {
        proxy: "proxy-1",
        migration: "api_v2",
        epoch: 5,
        target_reads: 900,
        source_reads: 100,
        target_errors: 1,
        source_errors: 0,
        shadow_compared: 40,
        shadow_mismatches: 2,
    }
}

const WITHIN: Duration = Duration::from_millis(2_500);
const TTL: Duration = Duration::from_secs(10);
const HOLDER: &str = "controller@host-a";

fn check(statements: &[String], want: Expect) {
    want.assert_eq(&statements.join(";\n"));
}

#[test]
fn postgres_control_statements() {
    check(
        &[
            pg::read_state("app", "api_v2"),
            pg::init_state("app", &row()),
            pg::write_state("app", &row(), 4),
            pg::append_event("app", &event()),
            pg::heartbeat("app", &beat()),
            pg::live_proxies("app", "api_v2", WITHIN),
            pg::acquire_lease("app", HOLDER, TTL),
            pg::lease_holder("app"),
            pg::release_lease("app", HOLDER),
        ],
        expect![[r#"
            SELECT phase, epoch, read_rule::text, share_bp, paused, pending_approval_bp, holding_writes, rollback_reason, updated_at FROM "app"."switchyard_state" WHERE migration = E'api_v2';
            INSERT INTO "app"."switchyard_state" (migration, phase, epoch, read_rule, share_bp, paused, pending_approval_bp, holding_writes, rollback_reason) VALUES (E'api_v2', E'read_ramp', 5, E'{"strategy": "percentage", "percent": 25}'::jsonb, 2500, false, 5000, false, NULL) ON CONFLICT (migration) DO NOTHING;
            UPDATE "app"."switchyard_state" SET phase = E'read_ramp', epoch = 5, read_rule = E'{"strategy": "percentage", "percent": 25}'::jsonb, share_bp = 2500, paused = false, pending_approval_bp = 5000, holding_writes = false, rollback_reason = NULL, updated_at = now() WHERE migration = E'api_v2' AND epoch = 4;
            INSERT INTO "app"."switchyard_events" (migration, actor, action, from_phase, to_phase, reason, detail) VALUES (E'api_v2', E'ops@bastion', E'rollback', E'read_ramp', E'rolled_back', E'it''s slow', E'{}'::jsonb);
            INSERT INTO "app"."switchyard_proxy_stats" AS s (migration, proxy, epoch, enforced_since, heartbeat_at, target_reads, source_reads, target_errors, source_errors, shadow_compared, shadow_mismatches) VALUES (E'api_v2', E'proxy-1', 5, clock_timestamp(), clock_timestamp(), 900, 100, 1, 0, 40, 2) ON CONFLICT (migration, proxy) DO UPDATE SET enforced_since = CASE WHEN s.epoch = EXCLUDED.epoch THEN s.enforced_since ELSE EXCLUDED.enforced_since END, epoch = EXCLUDED.epoch, heartbeat_at = EXCLUDED.heartbeat_at, target_reads = EXCLUDED.target_reads, source_reads = EXCLUDED.source_reads, target_errors = EXCLUDED.target_errors, source_errors = EXCLUDED.source_errors, shadow_compared = EXCLUDED.shadow_compared, shadow_mismatches = EXCLUDED.shadow_mismatches;
            SELECT proxy, epoch, enforced_since, heartbeat_at FROM "app"."switchyard_proxy_stats" WHERE migration = E'api_v2' AND heartbeat_at > clock_timestamp() - (2500000 * interval '1 microsecond') ORDER BY proxy;
            INSERT INTO "app"."switchyard_controller_lease" AS l (holder, expires_at) VALUES (E'controller@host-a', clock_timestamp() + (10000000 * interval '1 microsecond')) ON CONFLICT (singleton) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at WHERE l.holder = EXCLUDED.holder OR l.expires_at < clock_timestamp() RETURNING holder;
            SELECT holder, expires_at FROM "app"."switchyard_controller_lease" WHERE expires_at > clock_timestamp();
            DELETE FROM "app"."switchyard_controller_lease" WHERE holder = E'controller@host-a'"#]],
    );
    expect!["SELECT pg_notify(E'switchyard_state', E'api_v2')"]
        .assert_eq(&pg::notify_state("api_v2"));
}

#[test]
fn mysql_control_statements() {
    check(
        &[
            mysql::read_state("app", "api_v2"),
            mysql::init_state("app", &row()),
            mysql::write_state("app", &row(), 4),
            mysql::append_event("app", &event()),
            mysql::heartbeat("app", &beat()),
            mysql::live_proxies("app", "api_v2", WITHIN),
            mysql::acquire_lease("app", HOLDER, TTL),
            mysql::lease_holder("app"),
            mysql::release_lease("app", HOLDER),
        ],
        expect![[r#"
            SELECT `phase`, `epoch`, `read_rule`, `share_bp`, `paused`, `pending_approval_bp`, `holding_writes`, `rollback_reason`, `updated_at` FROM `app`.`switchyard_state` WHERE `migration` = 'api_v2';
            INSERT INTO `app`.`switchyard_state` (`migration`, `phase`, `epoch`, `read_rule`, `share_bp`, `paused`, `pending_approval_bp`, `holding_writes`, `rollback_reason`) VALUES ('api_v2', 'read_ramp', 5, '{"strategy": "percentage", "percent": 25}', 2500, FALSE, 5000, FALSE, NULL) ON DUPLICATE KEY UPDATE `migration` = `migration`;
            UPDATE `app`.`switchyard_state` SET `phase` = 'read_ramp', `epoch` = 5, `read_rule` = '{"strategy": "percentage", "percent": 25}', `share_bp` = 2500, `paused` = FALSE, `pending_approval_bp` = 5000, `holding_writes` = FALSE, `rollback_reason` = NULL, `updated_at` = NOW(6) WHERE `migration` = 'api_v2' AND `epoch` = 4;
            INSERT INTO `app`.`switchyard_events` (`migration`, `actor`, `action`, `from_phase`, `to_phase`, `reason`, `detail`) VALUES ('api_v2', 'ops@bastion', 'rollback', 'read_ramp', 'rolled_back', 'it''s slow', '{}');
            INSERT INTO `app`.`switchyard_proxy_stats` (`migration`, `proxy`, `epoch`, `enforced_since`, `heartbeat_at`, `target_reads`, `source_reads`, `target_errors`, `source_errors`, `shadow_compared`, `shadow_mismatches`) VALUES ('api_v2', 'proxy-1', 5, NOW(6), NOW(6), 900, 100, 1, 0, 40, 2) ON DUPLICATE KEY UPDATE `enforced_since` = IF(`epoch` = VALUES(`epoch`), `enforced_since`, VALUES(`enforced_since`)), `epoch` = VALUES(`epoch`), `heartbeat_at` = VALUES(`heartbeat_at`), `target_reads` = VALUES(`target_reads`), `source_reads` = VALUES(`source_reads`), `target_errors` = VALUES(`target_errors`), `source_errors` = VALUES(`source_errors`), `shadow_compared` = VALUES(`shadow_compared`), `shadow_mismatches` = VALUES(`shadow_mismatches`);
            SELECT `proxy`, `epoch`, `enforced_since`, `heartbeat_at` FROM `app`.`switchyard_proxy_stats` WHERE `migration` = 'api_v2' AND `heartbeat_at` > NOW(6) - INTERVAL 2500000 MICROSECOND ORDER BY `proxy`;
            INSERT INTO `app`.`switchyard_controller_lease` (`singleton`, `holder`, `expires_at`) VALUES (1, 'controller@host-a', TIMESTAMPADD(MICROSECOND, 10000000, NOW(6))) ON DUPLICATE KEY UPDATE `holder` = IF(`holder` = VALUES(`holder`) OR `expires_at` < NOW(6), VALUES(`holder`), `holder`), `expires_at` = IF(`holder` = VALUES(`holder`), VALUES(`expires_at`), `expires_at`);
            SELECT `holder`, `expires_at` FROM `app`.`switchyard_controller_lease` WHERE `expires_at` > NOW(6);
            DELETE FROM `app`.`switchyard_controller_lease` WHERE `holder` = 'controller@host-a'"#]],
    );
}
