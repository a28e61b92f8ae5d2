//! The admin CLI: `percloud user …` and `fsck`, on a data folder with no daemon (the CLI
//! opens the store itself) and on one a daemon is serving (through `DATA/control.sock`; the
//! store is locked by the daemon, so only the control socket can succeed). Also `--help`,
//! usage errors and the strict config file.

use std::path::Path;

use percloud_system_tests::{Daemon, PASSWORD, fsck_clean, percloud, temp_dir};

const NEW_PASSWORD: &str = "another-long-passphrase-77";

fn data_arg(data: &Path) -> &str {
    data.to_str().expect("UTF-8 temp path")
}

/// Runs the user life cycle (add, list, passwd, remove, fsck) on `data`; `daemon` is the one
/// serving it, if any, to check sign-ins take effect at once.
fn user_life_cycle(data: &Path, daemon: Option<&Daemon>) {
    let d = data_arg(data);
    let mode = if daemon.is_some() {
        "with a daemon"
    } else {
        "without a daemon"
    };

    // The first account is the box's owner; carol is an ordinary user.
    percloud(
        &["user", "add", "olivia", "--data", d],
        Some(&format!("{PASSWORD}\n")),
    )
    .expect_success(&format!("user add of the owner {mode}"));
    let added = percloud(
        &["user", "add", "carol", "--data", d],
        Some(&format!("{PASSWORD}\n")),
    );
    added.expect_success(&format!("user add {mode}"));

    let list = percloud(&["user", "list", "--data", d], None);
    list.expect_success(&format!("user list {mode}"));
    assert!(
        list.stdout.lines().any(|l| l.starts_with("carol")),
        "user list {mode} does not show carol\n{list}"
    );

    let again = percloud(
        &["user", "add", "carol", "--data", d],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(
        again.code.is_some_and(|c| c != 0),
        "adding carol twice {mode} must fail\n{again}"
    );

    if let Some(daemon) = daemon {
        let response = daemon
            .dav("carol", PASSWORD)
            .propfind("", "0")
            .expect("PROPFIND /dav/");
        assert_eq!(
            response.status, 207,
            "carol, just created through the control socket, cannot sign in: PROPFIND /dav/\n{response}"
        );
    }

    let passwd = percloud(
        &["user", "passwd", "carol", "--data", d],
        Some(&format!("{NEW_PASSWORD}\n")),
    );
    passwd.expect_success(&format!("user passwd {mode}"));
    if let Some(daemon) = daemon {
        let old = daemon
            .dav("carol", PASSWORD)
            .propfind("", "0")
            .expect("PROPFIND");
        assert_eq!(
            old.status, 401,
            "the old password still works after passwd\n{old}"
        );
        let new = daemon
            .dav("carol", NEW_PASSWORD)
            .propfind("", "0")
            .expect("PROPFIND");
        assert_eq!(
            new.status, 207,
            "the new password does not work after passwd\n{new}"
        );
    }

    let remove = percloud(&["user", "remove", "carol", "--data", d], None);
    remove.expect_success(&format!("user remove {mode}"));
    let list = percloud(&["user", "list", "--data", d], None);
    list.expect_success(&format!("user list {mode}"));
    assert!(
        !list.stdout.lines().any(|l| l.starts_with("carol")),
        "user list {mode} still shows carol after remove\n{list}"
    );
    if let Some(daemon) = daemon {
        let gone = daemon
            .dav("carol", NEW_PASSWORD)
            .propfind("", "0")
            .expect("PROPFIND");
        assert_eq!(gone.status, 401, "a removed user can still sign in\n{gone}");
    }

    let owner = percloud(&["user", "remove", "olivia", "--data", d], None);
    assert!(
        owner.code.is_some_and(|c| c != 0) && owner.stderr.contains("owner"),
        "removing the owner {mode} must fail and say why\n{owner}"
    );

    let unknown = percloud(&["user", "remove", "nobody", "--data", d], None);
    assert!(
        unknown.code.is_some_and(|c| c != 0),
        "removing an unknown user {mode} must fail\n{unknown}"
    );

    fsck_clean(data, mode);
}

#[test]
fn users_and_fsck_without_a_daemon() {
    let dir = temp_dir("cli");
    let data = dir.path().join("data");
    user_life_cycle(&data, None);
}

#[test]
fn users_and_fsck_through_the_control_socket() {
    let dir = temp_dir("cli");
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data);
    assert!(
        data.join("control.sock").exists(),
        "a serving daemon has no {}",
        data.join("control.sock").display()
    );
    user_life_cycle(&data, Some(&daemon));
}

#[test]
fn a_short_password_is_refused_with_a_one_line_reason() {
    let dir = temp_dir("cli");
    let data = dir.path().join("data");
    let ran = percloud(
        &["user", "add", "dave", "--data", data_arg(&data)],
        Some("abc\n"),
    );
    assert!(
        ran.code.is_some_and(|c| c != 0),
        "a 3-character password was accepted\n{ran}"
    );
    let lines: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected a one-line reason on stderr\n{ran}"
    );
    assert!(
        lines[0].to_lowercase().contains("password"),
        "the reason does not mention the password\n{ran}"
    );
    let list = percloud(&["user", "list", "--data", data_arg(&data)], None);
    list.expect_success("user list");
    assert!(
        !list.stdout.contains("dave"),
        "dave was created anyway\n{list}"
    );
}

#[test]
fn help_and_usage_errors() {
    let help = percloud(&["--help"], None);
    help.expect_success("percloud --help");
    for word in ["serve", "user", "fsck", "gc"] {
        assert!(
            help.stdout.contains(word),
            "--help does not mention {word}\n{help}"
        );
    }
    percloud(&["user", "--help"], None).expect_success("percloud user --help");

    let unknown = percloud(&["frobnicate"], None);
    assert_eq!(
        unknown.code,
        Some(2),
        "an unknown subcommand must exit 2\n{unknown}"
    );
    let bad_flag = percloud(&["fsck", "--no-such-flag"], None);
    assert_eq!(
        bad_flag.code,
        Some(2),
        "an unknown flag must exit 2\n{bad_flag}"
    );
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused() {
    let dir = temp_dir("cli");
    let data = dir.path().join("data");
    for (name, text, key) in [
        ("top.toml", "dta = \"/data\"\n", "dta"),
        ("nested.toml", "[retention]\nkeep = 1\n", "keep"),
    ] {
        let config = dir.path().join(name);
        std::fs::write(&config, text).expect("writing the config file");
        let config = config.to_str().expect("UTF-8 temp path");
        for args in [
            vec![
                "user",
                "list",
                "--data",
                data_arg(&data),
                "--config",
                config,
            ],
            vec![
                "serve",
                "--data",
                data_arg(&data),
                "--listen",
                "127.0.0.1:0",
                "--config",
                config,
            ],
        ] {
            let ran = percloud(&args, None);
            assert!(
                ran.code.is_some_and(|c| c != 0),
                "a config file with unknown key `{key}` was accepted\n{ran}"
            );
            assert!(
                ran.stderr.contains(key) && ran.stderr.contains(name),
                "the error should name the file ({name}) and the key ({key})\n{ran}"
            );
        }
    }
    let missing = percloud(
        &[
            "user",
            "list",
            "--data",
            data_arg(&data),
            "--config",
            "/nonexistent/percloud.toml",
        ],
        None,
    );
    assert!(
        missing.code.is_some_and(|c| c != 0)
            && missing.stderr.contains("/nonexistent/percloud.toml"),
        "a missing --config file must fail and name the file\n{missing}"
    );
}
