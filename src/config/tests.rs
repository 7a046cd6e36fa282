//! Loading, defaults and the errors that name the key.

use super::*;

#[test]
fn embedded_defaults_are_valid() {
    let c = Config::embedded();
    assert_eq!(c.listen_addr(), "0.0.0.0:5060".parse().unwrap());
    assert_eq!(c.rtp_ports(), (20000, 29999));
    assert_eq!(
        c.flows.for_number("+15550100"),
        Path::new("callflows/after_hours.toml")
    );
    assert!(!c.call.hold_after_prompt);
}

#[test]
fn a_file_overrides_only_its_keys() {
    let c = Config::from_str("[sip]\nlisten = \"127.0.0.1:5070\"\n", "t.toml").unwrap();
    assert_eq!(c.listen_addr(), "127.0.0.1:5070".parse().unwrap());
    assert_eq!(c.sip.max_calls, 500);
}

#[test]
fn clients_webhooks_and_callers() {
    let c = Config::from_str(
        "[[clients]]\nname = \"Acme\"\nnumbers = [\"+1555123*\"]\nagreement = true\n\
         rate_multiplier = 1.5\n[webhooks]\nurl = \"http://127.0.0.1:9/hook\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.clients.len(), 1);
    assert_eq!(c.clients[0].rate_multiplier, Some(1.5));
    assert_eq!(c.callers.repeat_times, 2);
    assert_eq!(c.sla.callback_minutes, 20);
    let e = Config::from_str("[webhooks]\nurl = \"ftp://x\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "config t.toml: webhooks.url = \"ftp://x\": expected an http:// or https:// URL"
    );
    let e = Config::from_str("[callers]\nrepeat_times = 1\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("callers.repeat_times"), "{e}");
}

#[test]
fn rtp_source_rules_and_timeout() {
    let c = Config::embedded();
    assert_eq!(c.rtp_latch(), RtpLatch::Signalling);
    assert_eq!(c.rtp.timeout_s, 30);
    let c = Config::from_str("[rtp]\nlatch = \"sdp\"\ntimeout_s = 0\n", "t.toml").unwrap();
    assert_eq!((c.rtp_latch(), c.rtp.timeout_s), (RtpLatch::Sdp, 0));
    let e = Config::from_str("[rtp]\nlatch = \"first\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("config t.toml: rtp.latch = \"first\": expected \"signalling\""),
        "{e}"
    );
    let e = Config::from_str("[rtp]\ntimeout_s = 86400\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rtp.timeout_s"), "{e}");
}

#[test]
fn errors_name_the_key_and_the_fix() {
    let e = Config::from_str("[rtp]\nports = \"30000-20000\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "config t.toml: rtp.ports = \"30000-20000\": expected LO-HI with 1024 <= LO < HI <= 65535, e.g. 20000-29999"
    );
    let e = Config::from_str("[sip]\nlisten = \"nowhere\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("sip.listen"), "{e}");
    let e = Config::from_str("[sip]\nlistn = \"1.2.3.4:5\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `listn`"), "{e}");
    let e = Config::from_str("[sip\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("config t.toml: "), "{e}");
}

#[test]
fn tcp_limits_have_safe_defaults_and_name_their_key() {
    let s = Config::embedded().sip;
    assert_eq!((s.tcp_idle_timeout_s, s.tcp_message_timeout_s), (30, 10));
    assert_eq!((s.tcp_max_connections, s.tcp_max_per_source), (1024, 64));
    for (text, key) in [
        ("tcp_idle_timeout_s = 0", "sip.tcp_idle_timeout_s"),
        ("tcp_message_timeout_s = 0", "sip.tcp_message_timeout_s"),
        ("tcp_max_connections = 0", "sip.tcp_max_connections"),
        ("tcp_max_per_source = 0", "sip.tcp_max_per_source"),
    ] {
        let e = Config::from_str(&format!("[sip]\n{text}\n"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{e}");
    }
}

#[test]
fn hours_defaults_are_office_hours_in_new_york() {
    let h = Config::embedded().hours;
    assert_eq!(h.timezone, "America/New_York");
    assert_eq!(h.monday, "09:00-17:00");
    assert_eq!(h.friday, "09:00-17:00");
    assert_eq!(h.saturday, "");
    assert_eq!(h.sunday, "");
    assert_eq!(h.holidays, ["2026-12-25", "2027-01-01"]);
}

#[test]
fn hours_overrides_keep_the_other_days() {
    let c = Config::from_str(
        "[hours]\ntimezone = \"Europe/Berlin\"\nsaturday = \"10:00-14:00\"\nmonday = \"\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.hours.timezone, "Europe/Berlin");
    assert_eq!(c.hours.monday, "");
    assert_eq!(c.hours.tuesday, "09:00-17:00");
    assert_eq!(c.hours.saturday, "10:00-14:00");
    // The holiday list is replaced whole, and bare TOML dates are accepted.
    let c = Config::from_str(
        "[hours]\nholidays = [2026-07-03, \"2026-11-26\"]\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.hours.holidays, ["2026-07-03", "2026-11-26"]);
    let c = Config::from_str("[hours]\nholidays = []\n", "t.toml").unwrap();
    assert!(c.hours.holidays.is_empty());
}

#[test]
fn hours_errors_name_the_key_and_the_fix() {
    let e = |text: &str| Config::from_str(text, "t.toml").unwrap_err().to_string();
    assert_eq!(
        e("[hours]\ntimezone = \"Mars/Base\"\n"),
        "config t.toml: hours.timezone = \"Mars/Base\": unknown IANA time zone; e.g. \
         Europe/Berlin, America/New_York"
    );
    assert_eq!(
        e("[hours]\nmonday = \"9am-5pm\"\n"),
        "config t.toml: hours.monday = \"9am-5pm\": \"9am-5pm\" is not a range HH:MM-HH:MM \
         (24-hour clock); e.g. \"09:00-17:00\", \"08:00-12:00,13:00-17:00\", \"00:00-24:00\", \
         or \"\" for closed all day"
    );
    assert_eq!(
        e("[hours]\nfriday = \"17:00-09:00\"\n"),
        "config t.toml: hours.friday = \"17:00-09:00\": range 17:00-09:00 does not end after \
         it starts; a range stays within one day (end it at 24:00 and start the next day at \
         00:00)"
    );
    assert_eq!(
        e("[hours]\nholidays = [\"2026-12-32\"]\n"),
        "config t.toml: hours.holidays = \"2026-12-32\": not a date; expected YYYY-MM-DD, \
         e.g. 2026-12-25"
    );
    assert_eq!(
        e("[hours]\nholidays = [2026-12-25T10:00:00]\n"),
        "config t.toml: hours.holidays = \"2026-12-25T10:00:00\": not a date; expected \
         YYYY-MM-DD, e.g. 2026-12-25"
    );
    let unknown = e("[hours]\nmondays = \"09:00-17:00\"\n");
    assert!(unknown.contains("unknown field `mondays`"), "{unknown}");
}

#[test]
fn staff_defaults_and_users() {
    let s = Config::embedded().staff;
    assert_eq!(s.realm, "ivr");
    assert!(s.users.is_empty());
    assert_eq!((s.min_expires, s.max_expires), (60, 3600));
    assert_eq!(
        (
            s.auth_failures_before_block,
            s.auth_failure_window_s,
            s.auth_block_s,
            s.auth_block_max_s
        ),
        (10, 300, 60, 3600)
    );
    use crate::sip::Algorithm;
    assert_eq!(s.digest_algorithms(), [Algorithm::Sha256, Algorithm::Md5]);
    let c = Config::from_str(
        "[[staff.users]]\nname = \"alice\"\npassword = \"pw\"\ndisplay = \"Alice\"\n\
         [[staff.users]]\nname = \"bob\"\npassword = \"pw2\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.staff.users.len(), 2);
    assert_eq!(c.staff.users[0].display.as_deref(), Some("Alice"));
    assert_eq!(c.staff.users[1].display, None);
    assert_eq!(c.staff.realm, "ivr");
    assert!(
        !format!("{:?}", c.staff).contains("pw2"),
        "passwords are redacted"
    );
}

#[test]
fn staff_errors_name_the_key_and_the_fix() {
    let e = |text: &str| Config::from_str(text, "t.toml").unwrap_err().to_string();
    assert_eq!(
        e("[[staff.users]]\nname = \"a\"\npassword = \"x\"\n\
           [[staff.users]]\nname = \"a\"\npassword = \"y\"\n"),
        "config t.toml: staff.users.name = \"a\": listed twice; each [[staff.users]] needs its own name"
    );
    assert_eq!(
        e("[[staff.users]]\nname = \"a\"\npassword = \"\"\n"),
        "config t.toml: staff.users.password = \"\": user a: set a password (an empty one would \
         let anyone register as this user)"
    );
    assert!(e("[[staff.users]]\nname = \"a b\"\npassword = \"x\"\n").contains("staff.users.name"));
    assert!(e("[staff]\nmin_expires = 600\nmax_expires = 60\n").contains("staff.max_expires"));
    assert!(e("[staff]\nmin_expires = 0\n").contains("staff.min_expires"));
    assert!(e("[staff]\nrealm = \"\"\n").contains("staff.realm"));
    assert!(e("[staff]\nalgorithms = [\"SHA-1\"]\n").contains("staff.algorithms"));
    assert!(e("[staff]\nalgorithms = []\n").contains("staff.algorithms"));
    assert!(e("[staff]\nauth_block_s = 0\n").contains("staff.auth_block_s"));
    assert!(e("[staff]\nauth_failure_window_s = 0\n").contains("staff.auth_failure_window_s"));
    assert_eq!(
        e("[staff]\nauth_block_s = 600\nauth_block_max_s = 60\n"),
        "config t.toml: staff.auth_block_max_s = \"60\": must be at least staff.auth_block_s (600)"
    );
    assert!(
        e("[[staff.users]]\nname = \"a\"\npasswd = \"x\"\n").contains("unknown field `passwd`")
    );
}

/// A fresh directory under the system temp dir for one test.
fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ivr-config-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::canonicalize(&dir).unwrap()
}

fn install_at(dir: &str) -> Install {
    Install {
        dir: PathBuf::from(dir),
        searched: vec![PathBuf::from(dir)],
        found: true,
    }
}

#[test]
fn a_file_s_paths_resolve_against_its_directory_and_the_defaults_against_the_install() {
    let dir = temp_dir("resolve");
    let file = dir.join("ivr.toml");
    std::fs::write(
        &file,
        "[prompts]\ndir = \"sounds\"\n[flows.numbers]\n\"+15550100\" = \"flows/sales.toml\"\n\
         [data]\ndir = \"/srv/ivr\"\n",
    )
    .unwrap();
    let c = Config::load_with(Some(&file), &install_at("/opt/ivr")).unwrap();
    assert_eq!(c.prompts.dir, dir.join("sounds"));
    assert_eq!(
        c.flows.for_number("+15550100"),
        dir.join("flows/sales.toml")
    );
    assert_eq!(c.data.dir, Path::new("/srv/ivr"));
    // Keys the file leaves out keep the built-in defaults, resolved against the install.
    assert_eq!(
        c.flows.default,
        Path::new("/opt/ivr/callflows/after_hours.toml")
    );
    // An empty path means "none" and stays empty.
    assert_eq!(c.billing.clients_csv, "");
    assert_eq!(
        c.path_origin("prompts.dir"),
        format!("prompts.dir = \"sounds\" in {}", file.display())
    );
    assert_eq!(
        c.path_origin(&flow_number_key("+15550100")),
        format!(
            "flows.numbers.\"+15550100\" = \"flows/sales.toml\" in {}",
            file.display()
        )
    );
    assert_eq!(
        c.path_origin("flows.default"),
        "flows.default = \"callflows/after_hours.toml\" of the built-in defaults, relative to \
         the install /opt/ivr"
    );
    // The same file read through a relative path with `..` names the same directory.
    let cwd = std::env::current_dir().unwrap();
    let roundabout = pathdiff(&dir.join("ivr.toml"), &cwd);
    let c = Config::load_with(Some(&roundabout), &install_at("/opt/ivr")).unwrap();
    assert_eq!(c.prompts.dir, dir.join("sounds"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `target` relative to `from` (`../../tmp/...`), both absolute.
fn pathdiff(target: &Path, from: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for _ in from.components().skip(1) {
        out.push("..");
    }
    out.join(target.strip_prefix("/").unwrap())
}

#[test]
fn with_no_file_the_defaults_resolve_against_the_install() {
    let c = Config::load_with(None, &install_at("/opt/ivr")).unwrap();
    assert_eq!(c.prompts.dir, Path::new("/opt/ivr/prompts"));
    assert_eq!(c.data.dir, Path::new("/opt/ivr/var"));
    assert_eq!(
        c.flows.default,
        Path::new("/opt/ivr/callflows/after_hours.toml")
    );
}

#[test]
fn the_install_is_the_first_candidate_holding_the_shipped_files() {
    let root = temp_dir("install");
    let (empty, shipped) = (root.join("empty"), root.join("shipped"));
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::create_dir_all(shipped.join("prompts")).unwrap();
    std::fs::create_dir_all(shipped.join("callflows")).unwrap();
    std::fs::write(shipped.join("callflows/after_hours.toml"), "").unwrap();
    let (prompts, flow) = (
        Path::new("prompts"),
        Path::new("callflows/after_hours.toml"),
    );
    let found = Install::find(vec![empty.clone(), shipped.clone()], prompts, flow);
    assert_eq!(
        (found.dir.as_path(), found.found),
        (shipped.as_path(), true)
    );
    // Nowhere: the first candidate (the working directory), and errors say where ivr looked.
    let none = Install::find(vec![empty.clone()], prompts, flow);
    assert_eq!((none.dir.as_path(), none.found), (empty.as_path(), false));
    let c = Config::load_with(None, &none).unwrap();
    let origin = c.path_origin("prompts.dir");
    assert!(origin.contains("no install found"), "{origin}");
    assert!(origin.contains(&empty.display().to_string()), "{origin}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_flag_s_path_resolves_against_the_working_directory() {
    let mut c = Config::load_with(None, &install_at("/opt/ivr")).unwrap();
    let dir = c.flag_path("data.dir", "--data", Path::new("here"));
    assert_eq!(dir, std::env::current_dir().unwrap().join("here"));
    assert_eq!(c.path_origin("data.dir"), "--data here");
}

#[test]
fn admin_listen_and_token_hash_are_checked() {
    let c = Config::embedded();
    assert_eq!(c.admin.listen, "127.0.0.1:8080");
    assert!(c.admin.token_hash.is_empty(), "never a default token");
    let off = Config::from_str("[admin]\nlisten = \"\"\n", "t.toml").unwrap();
    assert!(off.admin.listen.is_empty());
    let e = Config::from_str("[admin]\nlisten = \"localhost\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("config t.toml: admin.listen = \"localhost\""),
        "{e}"
    );
    let e = Config::from_str("[admin]\ntoken_hash = \"s3cret\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("admin.token_hash") && e.contains("ivr admin hash-token"),
        "{e}"
    );
}

#[test]
fn webhook_headers_are_checked_and_never_printed() {
    let c = Config::from_str(
        "[webhooks]\nurl = \"https://helpdesk.example/api/v2/tickets\"\nsecret = \"whsec-77\"\n\
         headers = { Authorization = \"Bearer tok-5150\" }\n\
         [webhooks.escalation_headers]\nX-Api-Key = \"key-8086\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.webhooks.headers["Authorization"], "Bearer tok-5150");
    assert_eq!(c.webhooks.escalation_headers["X-Api-Key"], "key-8086");
    assert_eq!(c.webhooks.ca_file(), None);
    // Neither the section's Debug nor the whole config's shows a secret.
    let printed = format!("{:?}\n{c:?}", c.webhooks);
    for secret in ["tok-5150", "key-8086", "whsec-77"] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
    assert!(printed.contains("Authorization: <redacted>"), "{printed}");
    let e = Config::from_str(
        "[webhooks]\nheaders = { \"X-Ivr-Signature\" = \"forged-1234\" }\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("webhooks.headers") && e.contains("X-Ivr-Signature"),
        "{e}"
    );
    assert!(!e.contains("forged-1234"), "{e}");
    let e = Config::from_str(
        "[webhooks]\nescalation_headers = { Authorization = \"Bearer a\\nb-secret\" }\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("webhooks.escalation_headers"), "{e}");
    assert!(!e.contains("b-secret"), "{e}");
}

#[test]
fn a_ca_file_resolves_against_its_config_and_must_hold_a_certificate() {
    let dir = temp_dir("ca-file");
    let file = dir.join("ivr.toml");
    std::fs::write(&file, "[webhooks]\nca_file = \"certs/ca.pem\"\n").unwrap();
    let pem = dir.join("certs/ca.pem");
    let e = Config::load_with(Some(&file), &install_at("/opt/ivr"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("webhooks.ca_file")
            && e.contains(&format!("cannot read the CA file {}", pem.display())),
        "{e}"
    );
    std::fs::create_dir_all(pem.parent().unwrap()).unwrap();
    std::fs::write(&pem, "no PEM here\n").unwrap();
    let e = Config::load_with(Some(&file), &install_at("/opt/ivr"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds no certificate"), "{e}");
    let ca = rcgen::generate_simple_self_signed(vec!["test-ca.invalid".to_string()]).unwrap();
    std::fs::write(&pem, ca.cert.pem()).unwrap();
    let c = Config::load_with(Some(&file), &install_at("/opt/ivr")).unwrap();
    assert_eq!(c.webhooks.ca_file(), Some(pem.as_path()));
    assert_eq!(
        c.path_origin("webhooks.ca_file"),
        format!("webhooks.ca_file = \"certs/ca.pem\" in {}", file.display())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn email_is_off_by_default_and_its_errors_name_the_key() {
    let c = Config::embedded();
    assert!(!c.email.enabled());
    let ok = "[email]\nsmtp_host = \"mail.example.com\"\nfrom = \"Line <ivr@example.com>\"\nto = [\"desk@example.com\"]\n";
    let c = Config::from_str(ok, "t.toml").expect("a minimal mail set-up");
    assert_eq!((c.email.port(), c.email.tls), (587, EmailTls::Starttls));
    for (text, key) in [
        (
            "[email]\nsmtp_host = \"m\"\nfrom = \"not an address\"\nto = [\"d@example.com\"]\n",
            "email.from",
        ),
        (
            "[email]\nsmtp_host = \"m\"\nfrom = \"i@example.com\"\nto = []\n",
            "email.to",
        ),
        (
            "[email]\nsmtp_host = \"m\"\nfrom = \"i@example.com\"\nto = [\"d@example.com\"]\nclient_to = { Acme = [\"bad\"] }\n",
            "email.client_to",
        ),
        (
            "[email]\nsmtp_host = \"m\"\nfrom = \"i@example.com\"\nto = [\"d@example.com\"]\nca_file = \"/nonexistent/ca.pem\"\n",
            "email.ca_file",
        ),
        (
            "[email]\nsmtp_host = \"m\"\nfrom = \"i@example.com\"\nto = [\"d@example.com\"]\ntls = \"ssl\"\n",
            "unknown variant `ssl`",
        ),
    ] {
        let e = Config::from_str(text, "t.toml").unwrap_err().to_string();
        assert!(e.contains(key), "{text:?} → {e}");
    }
}

#[test]
fn the_callback_trunk_may_be_a_host_name_and_dns_servers_are_addresses() {
    let c = Config::from_str(
        "[dns]\nservers = [\"127.0.0.1:5353\"]\n[desk]\ncallback_trunk = \"sip:pbx.example.com\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(
        c.dns.settings().unwrap().servers,
        ["127.0.0.1:5353".parse().unwrap()]
    );
    assert!(c.dns.servers.len() == 1 && Config::embedded().dns.servers.is_empty());
    let e = |text: &str| Config::from_str(text, "t.toml").unwrap_err().to_string();
    let bad = e("[desk]\ncallback_trunk = \"sip:pbx_example.com\"\n");
    assert!(
        bad.contains("desk.callback_trunk") && bad.contains("neither an IP"),
        "{bad}"
    );
    let bad = e("[desk]\ncallback_trunk = \"http://pbx.example.com\"\n");
    assert!(bad.contains("not a sip: or sips: URI"), "{bad}");
    let bad = e("[dns]\nservers = [\"ns1.example.com\"]\n");
    assert!(
        bad.contains("dns.servers") && bad.contains("by address"),
        "{bad}"
    );
    let bad = e("[dns]\ntimeout_ms = 0\n");
    assert!(bad.contains("dns.timeout_ms"), "{bad}");
}

#[test]
fn transcription_model_paths_resolve_against_their_config() {
    let dir = temp_dir("transcription-lm");
    let file = dir.join("ivr.toml");
    std::fs::write(&file, "[transcription]\nlm = \"models/it-support.lm\"\n").unwrap();
    let c = Config::load_with(Some(&file), &install_at("/opt/ivr")).unwrap();
    assert_eq!(c.transcription.lm, dir.join("models/it-support.lm"));
    // Keys the file leaves out keep the Debian model's absolute paths.
    assert_eq!(
        c.transcription.dict,
        std::path::Path::new("/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
