//! The commit pipeline against a recorder standing in for the privileged parent: confirm,
//! timeout, failing steps, refusals that change nothing, rollback, pruning, a marker that
//! survives the process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use mamori_config::{
    CONFIRM_WINDOW_API, CONFIRM_WINDOW_UI, Channel, ConfigError, Configs, Options, Outcome,
    Refusal, RevertReason, RevisionNote, Step,
};
use mamori_netconfig::{Action, ManagementSession, NetworkConfig, Rule, ZoneName};

const WINDOW: Option<Duration> = Some(Duration::from_secs(600));

/// What a refusal must leave alone.
fn snapshot(c: &Configs, r: &Recorder) -> (Vec<u64>, u64, Option<String>, bool) {
    (
        c.history().unwrap().iter().map(|i| i.id).collect(),
        c.running_id().unwrap(),
        r.kernel(),
        c.pending().unwrap().is_some(),
    )
}

#[test]
fn the_rescue_configuration_is_revision_1_and_runs_first() {
    let d = Disk::new();
    let c = d.open();
    assert_eq!(c.rescue_id().unwrap(), 1);
    assert_eq!(c.running_id().unwrap(), 1);
    let h = c.history().unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].channel, Channel::Boot);
    assert_eq!(json(&c.get(1).unwrap().config), json(&factory()));
    assert!(c.recover_at_start(&Recorder::default()).unwrap().is_none());
    drop(c);
    // Reopened with the same interfaces: still one rescue revision.
    let c = d.open();
    assert_eq!(c.history().unwrap().len(), 1);
}

#[test]
fn a_commit_without_confirm_is_final_at_once() {
    let d = Disk::new();
    let c = d.open();
    let r = Recorder::default();
    let out = c
        .commit(
            with_rules(3),
            meta("alice", Channel::Cli, "three rules"),
            None,
            &r,
        )
        .unwrap();
    assert_eq!(
        out,
        Outcome::Committed {
            revision: 2,
            previous: 1,
            deadline: None
        }
    );
    assert_eq!(r.calls(), ["check", "apply", "probe"]);
    assert_eq!(r.kernel().unwrap(), json(&with_rules(3)));
    assert!(c.pending().unwrap().is_none());
    assert_eq!(c.running_id().unwrap(), 2);
    let info = c.get(2).unwrap().info;
    assert_eq!(
        (info.author.as_str(), info.channel, info.comment.as_str()),
        ("alice", Channel::Cli, "three rules")
    );
    // Survives a reopen; nothing to recover.
    drop(c);
    let c = d.open();
    assert!(c.recover_at_start(&r).unwrap().is_none());
    assert_eq!(c.running_id().unwrap(), 2);
}

#[test]
fn confirm_keeps_the_commit() {
    let d = Disk::new();
    let c = d.open();
    let r = Recorder::default();
    let Outcome::Committed {
        revision,
        deadline: Some(deadline),
        ..
    } = c
        .commit(with_rules(2), meta("alice", Channel::Api, ""), WINDOW, &r)
        .unwrap()
    else {
        panic!("not committed with a deadline")
    };
    let m = c.pending().unwrap().unwrap();
    assert_eq!((m.new_revision, m.previous_revision), (revision, 1));
    assert_eq!(m.deadline, Some(deadline));
    assert_eq!(m.boot.same_boot(), Some(true));
    assert_eq!(c.running_id().unwrap(), revision);
    // Not due yet.
    assert!(
        c.tick(deadline - time::Duration::seconds(1), &r)
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        c.confirm_by("mallory"),
        Err(ConfigError::NotCommitter { committer }) if committer == "alice"
    ));
    assert!(c.pending().unwrap().is_some());
    assert_eq!(
        c.confirm_by("alice").unwrap(),
        Outcome::Confirmed { revision }
    );
    assert!(c.pending().unwrap().is_none());
    assert!(matches!(c.confirm(), Err(ConfigError::NoPending)));
    // Long after the deadline nothing reverts, in this process or after a restart.
    assert!(
        c.tick(deadline + time::Duration::hours(1), &r)
            .unwrap()
            .is_none()
    );
    drop(c);
    let c = d.open();
    assert!(c.recover_at_start(&r).unwrap().is_none());
    assert_eq!(c.running_id().unwrap(), revision);
    assert_eq!(r.kernel().unwrap(), json(&with_rules(2)));
}

#[test]
fn the_deadline_reverts_in_place_and_records_a_timeout_revision() {
    let d = Disk::new();
    let c = d.open();
    let r = Recorder::default();
    c.commit(with_rules(1), meta("alice", Channel::Cli, "base"), None, &r)
        .unwrap();
    let Outcome::Committed {
        revision,
        previous,
        deadline: Some(deadline),
    } = c
        .commit(
            with_rules(4),
            meta("bob", Channel::Ui, "try"),
            Some(CONFIRM_WINDOW_UI),
            &r,
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(r.kernel().unwrap(), json(&with_rules(4)));
    let out = c
        .tick(deadline + time::Duration::seconds(1), &r)
        .unwrap()
        .unwrap();
    let Outcome::Reverted {
        from,
        to,
        recorded: Some(rec),
        reason: RevertReason::Timeout { .. },
    } = out
    else {
        panic!("{out:?}")
    };
    assert_eq!((from, to), (revision, previous));
    assert_eq!(c.running_id().unwrap(), rec);
    assert_eq!(json(&c.running().unwrap().config), json(&with_rules(1)));
    assert_eq!(r.kernel().unwrap(), json(&with_rules(1)));
    let last = c.history().unwrap().pop().unwrap();
    assert_eq!((last.id, last.channel), (rec, Channel::Timeout));
    // The revert's note says the same as its comment, typed (the web UI words it).
    assert_eq!(
        last.comment,
        format!("revert r{revision} to r{previous}: not confirmed before the deadline")
    );
    assert!(
        matches!(
            last.note,
            Some(RevisionNote::Revert { from, to, reason: RevertReason::Timeout { deadline: d } })
                if (from, to, d) == (revision, previous, deadline)
        ),
        "{:?}",
        last.note
    );
    assert_eq!(c.get(1).unwrap().info.note, Some(RevisionNote::Rescue));
    assert_eq!(c.get(revision).unwrap().info.note, None);
    // The tried revision stays in the history.
    assert_eq!(json(&c.get(revision).unwrap().config), json(&with_rules(4)));
    assert!(c.pending().unwrap().is_none());
    // A confirm after the revert finds nothing.
    assert!(matches!(c.confirm(), Err(ConfigError::NoPending)));
}

#[test]
fn a_failing_probe_reverts_at_once() {
    let d = Disk::new();
    let c = d.open();
    let r = Recorder::default();
    c.commit(with_rules(1), meta("a", Channel::Api, ""), None, &r)
        .unwrap();
    let before = snapshot(&c, &r);
    r.fail(Failures {
        probe: true,
        ..Failures::default()
    });
    let out = c
        .commit(with_rules(9), meta("a", Channel::Api, ""), WINDOW, &r)
        .unwrap();
    assert!(
        matches!(
            out,
            Outcome::Reverted {
                from: 3,
                to: 2,
                recorded: None,
                reason: RevertReason::ProbeFailed(_)
            }
        ),
        "{out:?}"
    );
    assert_eq!(snapshot(&c, &r), before);
    assert!(matches!(c.get(3), Err(ConfigError::NotFound(3))));
    // The next commit gets a fresh id: ids are never reused.
    r.fail(Failures::default());
    let out = c
        .commit(with_rules(9), meta("a", Channel::Api, ""), None, &r)
        .unwrap();
    assert!(matches!(out, Outcome::Committed { revision: 4, .. }));
}

#[test]
fn a_failing_apply_restores_the_previous_configuration() {
    let d = Disk::new();
    let c = d.open();
    let r = Recorder::default();
    c.commit(with_rules(1), meta("a", Channel::Api, ""), None, &r)
        .unwrap();
    let before = snapshot(&c, &r);
    r.fail(Failures {
        apply: 1,
        ..Failures::default()
    });
    let out = c
        .commit(with_rules(2), meta("a", Channel::Api, ""), WINDOW, &r)
        .unwrap();
    assert!(
        matches!(
            out,
            Outcome::Reverted {
                reason: RevertReason::ApplyFailed(_),
                recorded: None,
                ..
            }
        ),
        "{out:?}"
    );
    // The torn load was replaced by the previous configuration.
    assert_eq!(snapshot(&c, &r), before);
}

#[test]
fn refused_candidates_change_nothing() {
    let d = Disk::new();
    let c = d.open();
    let r = Recorder::default();
    c.commit(with_rules(1), meta("a", Channel::Api, ""), None, &r)
        .unwrap();
    let before = snapshot(&c, &r);
    let calls = r.calls().len();

    // Fails validation: a rule from a zone that does not exist.
    let mut bad = with_rules(1);
    bad.firewall.rules.push(Rule::new(
        ZoneName::parse("nowhere").unwrap(),
        ZoneName::parse("lan").unwrap(),
        Action::Accept,
    ));
    let out = c
        .commit(bad, meta("a", Channel::Api, ""), WINDOW, &r)
        .unwrap();
    assert!(
        matches!(
            out,
            Outcome::Refused {
                step: Step::Validate,
                error: Refusal::Invalid(_)
            }
        ),
        "{out:?}"
    );
    assert_eq!(r.calls().len(), calls, "nothing reached the parent");
    assert_eq!(snapshot(&c, &r), before);

    // Cuts the committing session off: management no longer allowed from lan.
    let mut cut = with_rules(1);
    cut.management.zones.retain(|z| z.as_str() != "lan");
    let mut m = meta("a", Channel::Ui, "");
    m.session = Some(ManagementSession {
        source: "192.168.1.50".parse::<IpAddr>().unwrap(),
        listener: "192.168.1.1:443".parse::<SocketAddr>().unwrap(),
    });
    let out = c.commit(cut.clone(), m.clone(), WINDOW, &r).unwrap();
    assert!(
        matches!(
            out,
            Outcome::Refused {
                step: Step::Management,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(r.calls().len(), calls);
    assert_eq!(snapshot(&c, &r), before);
    // The same session may commit a candidate that keeps it.
    let mut keeps = with_rules(1);
    keeps.firewall.rules.clear();
    assert!(matches!(
        c.commit(keeps, m, None, &r).unwrap(),
        Outcome::Committed { .. }
    ));
    let before = snapshot(&c, &r);
    let calls = r.calls().len();

    // Fails the dry run.
    r.fail(Failures {
        check: true,
        ..Failures::default()
    });
    let out = c
        .commit(with_rules(5), meta("a", Channel::Api, ""), WINDOW, &r)
        .unwrap();
    assert!(
        matches!(
            out,
            Outcome::Refused {
                step: Step::Check,
                error: Refusal::Check(_)
            }
        ),
        "{out:?}"
    );
    assert_eq!(r.calls()[calls..], ["check"]);
    assert_eq!(snapshot(&c, &r), before);
    // And after a reopen, too.
    drop(c);
    let c = d.open();
    assert!(c.recover_at_start(&r).unwrap().is_none());
    assert_eq!(snapshot(&c, &r), before);
}

#[test]
fn one_pending_commit_at_a_time() {
    let d = Disk::new();
    let c = d.open();
    let r = Recorder::default();
    c.commit(with_rules(1), meta("a", Channel::Api, ""), WINDOW, &r)
        .unwrap();
    let before = snapshot(&c, &r);
    let out = c
        .commit(with_rules(2), meta("b", Channel::Api, ""), None, &r)
        .unwrap();
    assert_eq!(
        out,
        Outcome::Refused {
            step: Step::Pending,
            error: Refusal::Pending { revision: 2 }
        }
    );
    assert_eq!(snapshot(&c, &r), before);
}

#[test]
fn rollback_restores_revision_n_byte_for_byte() {
    let d = Disk::new();
    let c = d.open();
    let r = Recorder::default();
    let mut n = with_rules(3);
    n.firewall.rules[1].comment = Some(mamori_netconfig::Comment::parse("keep me").unwrap());
    c.commit(n.clone(), meta("a", Channel::Cli, "N"), None, &r)
        .unwrap();
    let n_json = json(&c.get(2).unwrap().config);
    assert_eq!(n_json, json(&n));
    c.commit(with_rules(7), meta("a", Channel::Cli, ""), None, &r)
        .unwrap();
    c.commit(factory(), meta("a", Channel::Cli, ""), None, &r)
        .unwrap();
    let diff = c.diff(2, 3).unwrap();
    assert!(diff.starts_with("--- r2\n+++ r3\n"), "{diff}");
    assert!(c.diff(2, 2).unwrap().is_empty());

    let out = c
        .rollback_to(2, meta("a", Channel::Cli, ""), WINDOW, &r)
        .unwrap();
    let Outcome::Committed { revision, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(revision, 5);
    let rolled = c.get(revision).unwrap();
    assert_eq!(rolled.info.comment, "rollback to r2");
    assert_eq!(
        rolled.info.note,
        Some(RevisionNote::RollbackTo { revision: 2 })
    );
    assert_eq!(json(&rolled.config), n_json);
    assert_eq!(r.kernel().unwrap(), n_json);
    // The stored value itself, as serialized JSON.
    assert_eq!(
        serde_json::to_string(&rolled.config).unwrap(),
        serde_json::to_string(&c.get(2).unwrap().config).unwrap()
    );
    assert!(c.diff(2, revision).unwrap().is_empty());
    c.confirm().unwrap();
    // A rollback goes through the checks: to the rescue, refused by a failing dry run.
    r.fail(Failures {
        check: true,
        ..Failures::default()
    });
    let out = c
        .rollback_to(1, meta("a", Channel::Cli, ""), None, &r)
        .unwrap();
    assert!(matches!(
        out,
        Outcome::Refused {
            step: Step::Check,
            ..
        }
    ));
    assert!(matches!(
        c.rollback_to(99, meta("a", Channel::Cli, ""), None, &r),
        Err(ConfigError::NotFound(99))
    ));
}

#[test]
fn pruning_keeps_the_limit_but_never_running_previous_or_rescue() {
    let d = Disk::new();
    // Below the minimum: raised to 100.
    let c = d.open_with(Options { keep: 5 });
    assert_eq!(c.keep(), 100);
    let r = Recorder::default();
    for i in 0..110 {
        c.commit(with_rules(i % 7), meta("a", Channel::Api, ""), None, &r)
            .unwrap();
    }
    // 111 made (rescue + 110), 100 kept.
    let ids: Vec<u64> = c.history().unwrap().iter().map(|i| i.id).collect();
    assert_eq!(ids.len(), 100);
    assert_eq!(ids[0], 1, "the rescue is never pruned");
    assert_eq!(ids[1], 13, "the oldest others go first");
    assert_eq!(*ids.last().unwrap(), 111);
    assert!(matches!(c.get(2), Err(ConfigError::NotFound(2))));
    assert!(c.get(1).is_ok());

    // A commit that waits (running 112, previous 111): both survive the pruning it does.
    let out = c
        .commit(with_rules(1), meta("a", Channel::Api, ""), WINDOW, &r)
        .unwrap();
    assert!(matches!(
        out,
        Outcome::Committed {
            revision: 112,
            previous: 111,
            ..
        }
    ));
    let ids: Vec<u64> = c.history().unwrap().iter().map(|i| i.id).collect();
    assert_eq!(ids.len(), 100);
    assert!(ids.contains(&1) && ids.contains(&111) && ids.contains(&112));

    // Running an old revision (rolled back to the oldest other): it survives later pruning.
    c.confirm().unwrap();
    let oldest_other = ids[1];
    c.rollback_to(oldest_other, meta("a", Channel::Api, ""), None, &r)
        .unwrap();
    for _ in 0..5 {
        c.commit(with_rules(2), meta("a", Channel::Api, ""), None, &r)
            .unwrap();
    }
    let ids: Vec<u64> = c.history().unwrap().iter().map(|i| i.id).collect();
    assert_eq!(ids.len(), 100);
    assert!(ids.contains(&1));
    assert!(!ids.contains(&oldest_other), "no longer running: pruned");
    // Store size figure for the report.
    let size = std::fs::metadata(d.path()).unwrap().len();
    eprintln!("store with 100 small revisions: {size} bytes");
}

#[test]
fn a_marker_that_outlives_the_process_is_reverted_at_start() {
    let d = Disk::new();
    let r = Recorder::default();
    {
        let c = d.open();
        c.commit(with_rules(1), meta("a", Channel::Cli, "good"), None, &r)
            .unwrap();
        c.commit(with_rules(6), meta("a", Channel::Cli, "bad"), WINDOW, &r)
            .unwrap();
        assert_eq!(r.kernel().unwrap(), json(&with_rules(6)));
        // The process "dies": everything dropped, nothing confirmed or cleaned up.
    }
    let c = d.open();
    let m = c.pending().unwrap().expect("the marker is on disk");
    assert_eq!((m.new_revision, m.previous_revision), (3, 2));
    let out = c.recover_at_start(&r).unwrap().unwrap();
    let Outcome::Reverted {
        from: 3,
        to: 2,
        recorded: Some(rec),
        reason:
            RevertReason::Restart {
                same_boot: Some(true),
                deadline: Some(_),
            },
    } = out
    else {
        panic!("{out:?}")
    };
    assert_eq!(c.running_id().unwrap(), rec);
    assert_eq!(c.get(rec).unwrap().info.channel, Channel::Boot);
    assert_eq!(json(&c.running().unwrap().config), json(&with_rules(1)));
    assert_eq!(r.kernel().unwrap(), json(&with_rules(1)));
    assert!(c.pending().unwrap().is_none());
    // Only once.
    drop(c);
    assert!(d.open().recover_at_start(&r).unwrap().is_none());
}

#[test]
fn a_revert_that_cannot_apply_leaves_the_marker_and_falls_back_to_the_rescue() {
    let d = Disk::new();
    let r = Recorder::default();
    {
        let c = d.open();
        c.commit(with_rules(1), meta("a", Channel::Cli, ""), None, &r)
            .unwrap();
        // The apply fails, and so does the undo's apply: the marker must stay.
        r.fail(Failures {
            apply: 2,
            ..Failures::default()
        });
        let err = c
            .commit(with_rules(6), meta("a", Channel::Cli, ""), None, &r)
            .unwrap_err();
        assert!(
            matches!(err, ConfigError::RevertFailed { revision: 2, .. }),
            "{err}"
        );
        assert_eq!(r.kernel().unwrap(), TORN);
        assert!(c.pending().unwrap().is_some());
    }
    // At start, the previous revision fails to apply once more: the rescue is applied.
    r.fail(Failures {
        apply: 1,
        ..Failures::default()
    });
    let c = d.open();
    let out = c.recover_at_start(&r).unwrap().unwrap();
    assert!(
        matches!(
            out,
            Outcome::Reverted {
                from: 3,
                to: 1,
                recorded: Some(4),
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(r.kernel().unwrap(), json(&factory()));
    assert_eq!(json(&c.running().unwrap().config), json(&factory()));
}

#[test]
fn a_confirm_after_the_deadline_is_refused() {
    let d = Disk::new();
    let c = d.open();
    let r = Recorder::default();
    c.commit(
        with_rules(1),
        meta("a", Channel::Api, ""),
        Some(Duration::from_millis(1)),
        &r,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(matches!(
        c.confirm(),
        Err(ConfigError::WindowExpired { .. })
    ));
    assert!(
        c.tick(time::OffsetDateTime::now_utc(), &r)
            .unwrap()
            .is_some()
    );
    assert_eq!(c.running().unwrap().config, factory());
}

#[test]
fn a_wall_clock_stepped_back_does_not_hold_the_window_open() {
    let d = Disk::new();
    let c = d.open();
    let r = Recorder::default();
    let Outcome::Committed {
        deadline: Some(deadline),
        ..
    } = c
        .commit(
            with_rules(1),
            meta("a", Channel::Api, ""),
            Some(Duration::from_millis(50)),
            &r,
        )
        .unwrap()
    else {
        panic!()
    };
    // By the wall clock handed in, an hour remains; by the boot's clock, nothing.
    let stepped_back = deadline - time::Duration::hours(1);
    std::thread::sleep(Duration::from_millis(80));
    let out = c.tick(stepped_back, &r).unwrap();
    assert!(
        matches!(
            out,
            Some(Outcome::Reverted {
                reason: RevertReason::Timeout { .. },
                ..
            })
        ),
        "{out:?}"
    );
    assert_eq!(c.running().unwrap().config, factory());
}

#[test]
fn default_windows() {
    assert_eq!(CONFIRM_WINDOW_API, Duration::from_secs(600));
    assert_eq!(
        Channel::Cli.default_confirm_window(),
        Some(CONFIRM_WINDOW_API)
    );
    assert_eq!(
        Channel::Ui.default_confirm_window(),
        Some(Duration::from_secs(180))
    );
    assert_eq!(Channel::Console.default_confirm_window(), None);
}

#[test]
fn a_changed_rescue_is_recorded_and_the_running_one_kept() {
    let d = Disk::new();
    let c = d.open();
    let r = Recorder::default();
    c.commit(with_rules(2), meta("a", Channel::Cli, ""), None, &r)
        .unwrap();
    drop(c);
    let store = mamori_store::Store::open(
        &d.path(),
        mamori_crypto::aead::Key::from_bytes(&d.key).unwrap(),
    )
    .unwrap();
    let other = NetworkConfig::factory(vec![iface(
        "eth9",
        mamori_netconfig::Role::Lan,
        &["192.168.9.1/24"],
    )]);
    let c = Configs::open(
        std::sync::Arc::new(store),
        other.clone(),
        Options::default(),
    )
    .unwrap();
    assert_eq!(c.rescue_id().unwrap(), 3);
    assert_eq!(c.get(3).unwrap().config, other);
    assert_eq!(c.running_id().unwrap(), 2);
}

#[test]
fn no_revision_row_outlives_its_index_entry() {
    let d = Disk::new();
    let store = std::sync::Arc::new(
        mamori_store::Store::open(
            &d.path(),
            mamori_crypto::aead::Key::from_bytes(&d.key).unwrap(),
        )
        .unwrap(),
    );
    let c = Configs::open(store.clone(), factory(), Options { keep: 100 }).unwrap();
    let r = Recorder::default();
    for i in 0..104 {
        c.commit(with_rules(i % 3), meta("a", Channel::Api, ""), None, &r)
            .unwrap();
    }
    r.fail(Failures {
        probe: true,
        ..Failures::default()
    });
    c.commit(with_rules(5), meta("a", Channel::Api, ""), None, &r)
        .unwrap();
    let rows: Vec<u64> = store
        .list::<serde_json::Value>(mamori_store::Table::ConfigRevisions)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k.parse().unwrap())
        .collect();
    let index: Vec<u64> = c.history().unwrap().iter().map(|i| i.id).collect();
    assert_eq!(rows, index);
    assert_eq!(rows.len(), 100);
}

/// An apply that checks in the same pass (the parent: one nftables transaction the kernel checks
/// whole): no separate dry run; a refusal that changed nothing is a refusal, not a revert.
struct OnePass(Recorder);

impl mamori_config::Apply for OnePass {
    fn check(&self, cfg: &NetworkConfig) -> Result<(), mamori_config::ApplyError> {
        self.0.check(cfg)
    }
    fn apply(&self, cfg: &NetworkConfig) -> Result<(), mamori_config::ApplyError> {
        self.0.apply(cfg)
    }
    fn probe(&self) -> Result<(), mamori_config::ApplyError> {
        self.0.probe()
    }
    fn checks_while_applying(&self) -> bool {
        true
    }
    fn apply_checked(&self, cfg: &NetworkConfig) -> Result<(), mamori_config::ApplyFailure> {
        if self.0.fail.lock().unwrap().check {
            self.0.calls.lock().unwrap().push("apply refused".into());
            return Err(mamori_config::ApplyFailure::Refused(
                mamori_config::ApplyError("nft: syntax error".into()),
            ));
        }
        self.0
            .apply(cfg)
            .map_err(mamori_config::ApplyFailure::Failed)
    }
}

#[test]
fn an_apply_that_checks_while_applying_commits_in_one_pass_and_its_refusal_changes_nothing() {
    let d = Disk::new();
    let c = d.open();
    let r = OnePass(Recorder::default());
    let out = c
        .commit(with_rules(2), meta("alice", Channel::Api, ""), WINDOW, &r)
        .unwrap();
    assert!(
        matches!(out, Outcome::Committed { revision: 2, .. }),
        "{out:?}"
    );
    assert_eq!(r.0.calls(), ["apply", "probe"], "no separate dry run");
    c.confirm().unwrap();

    let before = snapshot(&c, &r.0);
    r.0.fail(Failures {
        check: true,
        ..Failures::default()
    });
    let out = c
        .commit(with_rules(5), meta("alice", Channel::Api, ""), WINDOW, &r)
        .unwrap();
    assert!(
        matches!(
            out,
            Outcome::Refused {
                step: Step::Check,
                error: Refusal::Check(_)
            }
        ),
        "{out:?}"
    );
    // Refused, not reverted: no revision, no marker, the kernel as it was, no second apply.
    assert_eq!(snapshot(&c, &r.0), before);
    assert_eq!(
        r.0.calls(),
        ["apply", "probe", "apply refused"],
        "nothing re-applied"
    );
    // The next id is still fresh (revision ids are never reused).
    r.0.fail(Failures::default());
    let out = c
        .commit(with_rules(6), meta("alice", Channel::Api, ""), None, &r)
        .unwrap();
    assert!(
        matches!(out, Outcome::Committed { revision: 4, .. }),
        "{out:?}"
    );
}
