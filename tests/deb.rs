//! The Debian package: `cargo deb` on the binary this test was built with, then `dpkg-deb` on
//! the result. It checks what lands where (binary, unit and its /usr/bin drop-in, the env file
//! as a conffile, the board profiles, the docs), that the maintainer scripts only touch
//! systemd when it runs and create no user, and, extracted into a scratch root, that the
//! packaged binary runs and accepts the packaged env file without a warning. Then the real
//! `dpkg` installs the package into a scratch root, removes it (the service's cache stays) and
//! purges it (the cache and state that systemd made for the unit go too).
//!
//! It never rebuilds streme: the binary cargo built for this test run is copied into a scratch
//! target directory and packaged with `cargo deb --no-build`, so the test costs one packaging,
//! not a release build.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{require_tool, TestDir};

/// `cargo deb` compresses the binary with xz; on 2 shared cores that takes seconds, a debug
/// binary a minute or more.
const PACKAGING_DEADLINE: Duration = Duration::from_secs(600);

const PROFILES: [&str; 6] = [
    "rpi-zero2w",
    "rpi3",
    "rpi4",
    "rpi5",
    "nas-x86_64",
    "nas-aarch64",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `cmd` to completion within `deadline`, and panics with its output if it fails.
fn run_within(mut cmd: Command, deadline: Duration) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    require_tool(&program);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{program}`: {e}"));
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let started = Instant::now();
    let out = rx
        .recv_timeout(deadline)
        .unwrap_or_else(|_| {
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!(
                "`{program}` {:?} did not finish within {deadline:?}",
                cmd.get_args()
            )
        })
        .unwrap_or_else(|e| panic!("`{program}`: {e}"));
    assert!(
        out.status.success(),
        "`{program}` {:?} failed ({}) after {:?}\nstdout:\n{}\nstderr:\n{}",
        cmd.get_args(),
        out.status,
        started.elapsed(),
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn run(program: &str, args: &[&Path]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_within(cmd, Duration::from_secs(120))
}

/// `cargo deb --no-build` on a copy of this run's binary; returns the .deb's path.
/// `variant` selects a `[package.metadata.deb.variants.*]` section.
fn build_deb(dir: &TestDir, variant: Option<&str>) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let probe = Command::new(&cargo)
        .args(["deb", "--version"])
        .stdin(Stdio::null())
        .output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "required tool `cargo-deb` is missing; `scripts/test` installs it, or run: \
         cargo install cargo-deb --locked"
    );
    // cargo-deb computes Depends ($auto) with dpkg-shlibdeps, and only warns without it.
    require_tool("dpkg-shlibdeps");

    let name = variant.unwrap_or("default");
    let target = dir.sub(&format!("target-{name}"));
    let release = target.join("release");
    std::fs::create_dir_all(&release).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_streme"), release.join("streme")).unwrap();
    let out_dir = dir.sub(&format!("deb-{name}"));

    let mut cmd = Command::new(&cargo);
    cmd.arg("deb")
        .args(["--no-build", "--no-strip", "--offline", "--locked"])
        .arg("--manifest-path")
        .arg(repo().join("Cargo.toml"))
        .arg("--output")
        .arg(&out_dir)
        .env("CARGO_TARGET_DIR", &target);
    if let Some(variant) = variant {
        cmd.args(["--variant", variant, "--fast"]);
    }
    run_within(cmd, PACKAGING_DEADLINE);

    let debs: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one .deb in {}: {debs:?}", out_dir.display());
    debs.into_iter().next().unwrap()
}

/// One line of `dpkg-deb --contents`: mode string, owner, and the path without its `./`.
struct Entry {
    mode: String,
    owner: String,
    path: String,
}

fn contents(deb: &Path) -> Vec<Entry> {
    let out = run("dpkg-deb", &[Path::new("--contents"), deb]);
    text(&out.stdout)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(fields.len() >= 6, "odd dpkg-deb --contents line: {line}");
            Entry {
                mode: fields[0].to_string(),
                owner: fields[1].to_string(),
                path: fields[5].trim_start_matches("./").to_string(),
            }
        })
        .collect()
}

fn entry<'a>(entries: &'a [Entry], path: &str) -> &'a Entry {
    entries.iter().find(|e| e.path == path).unwrap_or_else(|| {
        let all: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        panic!("{path} is not in the package: {all:#?}")
    })
}

/// The value of a control field (`dpkg-deb --field`).
fn field(deb: &Path, name: &str) -> String {
    let out = run("dpkg-deb", &[Path::new("--field"), deb, Path::new(name)]);
    text(&out.stdout).trim().to_string()
}

/// Every line of `script` that calls `needle` sits inside an `if` whose condition holds
/// `guard`. Nesting is followed through `if`/`fi` (the generated scripts use no `case`).
fn assert_guarded(name: &str, script: &str, needle: &str, guard: &str) {
    let mut open_ifs: Vec<&str> = Vec::new();
    let mut calls = 0;
    for line in script.lines().map(str::trim) {
        if line.starts_with("if ") {
            open_ifs.push(line);
        } else if line == "fi" {
            open_ifs
                .pop()
                .unwrap_or_else(|| panic!("{name}: unbalanced fi"));
        } else if line.split_whitespace().next() == Some(needle) {
            calls += 1;
            assert!(
                open_ifs.iter().any(|c| c.contains(guard)),
                "{name} runs `{line}` outside an `if` on `{guard}`:\n{script}"
            );
        }
    }
    assert!(open_ifs.is_empty(), "{name}: unclosed if");
    assert!(calls > 0, "{name} never calls {needle}:\n{script}");
}

#[test]
fn the_deb_carries_the_binary_unit_conffile_and_profiles_and_runs_from_a_scratch_root() {
    let dir = TestDir::new("deb");
    let deb = build_deb(&dir, None);
    let size = std::fs::metadata(&deb).unwrap().len();
    eprintln!("{}: {size} bytes", deb.display());

    // Control fields.
    let arch = run("dpkg", &[Path::new("--print-architecture")]);
    assert_eq!(field(&deb, "Package"), "streme");
    assert_eq!(
        field(&deb, "Version"),
        format!("{}-1", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(field(&deb, "Architecture"), text(&arch.stdout).trim());
    assert_eq!(field(&deb, "Section"), "net");
    assert_eq!(field(&deb, "Priority"), "optional");
    assert!(
        field(&deb, "Maintainer").contains('@'),
        "a maintainer with an address"
    );
    let depends = field(&deb, "Depends");
    assert!(
        depends.split(',').any(|d| d.trim().starts_with("libc6")),
        "Depends is computed from the binary (libc6): {depends:?}"
    );
    let description = field(&deb, "Description");
    assert!(
        description.lines().count() > 5 && description.contains("/etc/streme/streme.env"),
        "an extended description: {description}"
    );

    // Files, modes and owners.
    let entries = contents(&deb);
    let bin = entry(&entries, "usr/bin/streme");
    assert_eq!(bin.mode, "-rwxr-xr-x");
    assert!(
        entries
            .iter()
            .all(|e| e.owner == "0/0" || e.owner == "root/root"),
        "everything is root's"
    );
    assert_eq!(
        entry(&entries, "usr/lib/systemd/system/streme.service").mode,
        "-rw-r--r--"
    );
    entry(
        &entries,
        "usr/lib/systemd/system/streme.service.d/usr-bin.conf",
    );
    // 0600: HTTP_SOURCES may carry credentials; systemd reads the file as root.
    assert_eq!(entry(&entries, "etc/streme/streme.env").mode, "-rw-------");
    for profile in PROFILES {
        entry(&entries, &format!("usr/share/streme/board/{profile}.env"));
    }
    entry(&entries, "usr/share/doc/streme/README.md");
    entry(&entries, "usr/share/doc/streme/copyright");
    assert!(
        !entries.iter().any(|e| e.path.starts_with("usr/local")),
        "a package never ships files under /usr/local"
    );

    // Control files: the conffile and the maintainer scripts.
    let control = dir.sub("control");
    run("dpkg-deb", &[Path::new("--control"), &deb, &control]);
    assert_eq!(
        read(&control.join("conffiles")).trim(),
        "/etc/streme/streme.env"
    );
    let postinst = read(&control.join("postinst"));
    let prerm = read(&control.join("prerm"));
    let postrm = read(&control.join("postrm"));
    for (name, script) in [
        ("postinst", &postinst),
        ("prerm", &prerm),
        ("postrm", &postrm),
    ] {
        assert!(
            script.starts_with("#!/bin/sh\nset -e"),
            "{name} stops on errors:\n{script}"
        );
        run("sh", &[Path::new("-n"), &control.join(name)]);
        // DynamicUser=yes: systemd allocates the user, the package creates none.
        for tool in ["useradd", "adduser", "systemd-sysusers"] {
            assert!(
                !script.contains(tool),
                "{name} creates a user with {tool}:\n{script}"
            );
        }
    }
    assert!(
        postinst.contains("deb-systemd-helper enable streme.service"),
        "postinst enables the unit:\n{postinst}"
    );
    // Starting, stopping and reloading only when systemd runs (not in a chroot or a container
    // build), and d-s-h on removal only while it is installed.
    let running = "[ -d /run/systemd/system ]";
    assert_guarded("postinst", &postinst, "systemctl", running);
    assert_guarded("postinst", &postinst, "deb-systemd-invoke", running);
    assert!(postinst.contains("deb-systemd-invoke $_dh_action streme.service"));
    assert_guarded("prerm", &prerm, "deb-systemd-invoke", running);
    assert_guarded(
        "postrm",
        &postrm,
        "deb-systemd-helper",
        "[ -x \"/usr/bin/deb-systemd-helper\" ]",
    );
    assert!(postrm.contains("deb-systemd-helper purge streme.service"));
    // systemd/postrm is the template: cargo-deb put its snippets where the token was.
    assert!(
        !postrm.contains("#DEBHELPER#"),
        "postrm still holds the DEBHELPER token:\n{postrm}"
    );
    assert_guarded("postrm", &postrm, "rm", "[ \"$1\" = \"purge\" ]");
    assert!(
        postrm.contains("${DPKG_ROOT:-}/var/$dir/private/streme"),
        "postrm's purge removes DynamicUser's directories under $DPKG_ROOT:\n{postrm}"
    );

    // Extracted into a scratch root: the files are the repository's.
    let root = dir.sub("root");
    run("dpkg-deb", &[Path::new("-x"), &deb, &root]);
    let streme = root.join("usr/bin/streme");
    assert_eq!(
        std::fs::read(&streme).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_streme")).unwrap(),
        "the packaged binary is the built one"
    );
    assert_eq!(
        read(&root.join("usr/lib/systemd/system/streme.service")),
        read(&repo().join("systemd/streme.service"))
    );
    let env_file = root.join("etc/streme/streme.env");
    assert_eq!(read(&env_file), read(&repo().join("board/nas-x86_64.env")));
    for profile in PROFILES {
        let path = format!("board/{profile}.env");
        assert_eq!(
            read(&root.join("usr/share/streme").join(&path)),
            read(&repo().join(&path))
        );
    }
    // The drop-in's ExecStart (the last one systemd sees) runs the packaged binary.
    let dropin = read(&root.join("usr/lib/systemd/system/streme.service.d/usr-bin.conf"));
    let exec: Vec<&str> = dropin
        .lines()
        .filter(|l| l.starts_with("ExecStart="))
        .collect();
    assert_eq!(exec, ["ExecStart=", "ExecStart=/usr/bin/streme serve"]);

    // The packaged binary runs, and takes the packaged env file without a warning.
    let home = dir.sub("home");
    let streme_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&streme);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .args(args);
        run_within(cmd, Duration::from_secs(60))
    };
    let version = text(&streme_cmd(&["--version"]).stdout);
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")),
        "--version names the version: {version:?}"
    );
    let config = streme_cmd(&["--env-file", &env_file.display().to_string(), "config"]);
    assert!(
        text(&config.stderr).trim().is_empty(),
        "the packaged env file warns: {}",
        text(&config.stderr)
    );
    let shown = text(&config.stdout);
    for line in read(&env_file).lines() {
        let Some((key, _)) = line.split_once('=').filter(|_| !line.starts_with('#')) else {
            continue;
        };
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with(&format!("{key}=")) && l.contains("(env file")),
            "{key} does not come from the packaged env file:\n{shown}"
        );
    }

    install_remove_and_purge_with_dpkg(&dir, &deb);
}

/// Runs `dpkg ARGS` on the scratch root `root`, as dpkg runs for a chrootless bootstrap:
/// `--root` puts the files there, and `--force-script-chrootless` runs the maintainer scripts
/// on this machine with `DPKG_ROOT=<root>`, which the scripts (ours and deb-systemd-helper)
/// prefix to every path. `--force-depends`: the scratch root has no libc6 package.
///
/// It runs in a new mount namespace with an empty /run, and as root of a new user namespace
/// (so it needs no real root). The generated snippets start, stop and daemon-reload systemd
/// whenever `/run/systemd/system` exists, without looking at DPKG_ROOT; the empty /run makes
/// them skip that on a machine that runs systemd, as they do in a chroot.
fn dpkg_in(root: &Path, args: &[&str]) -> Output {
    require_tool("dpkg");
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--map-root-user", "--", "sh", "-c"])
        .arg("mount -t tmpfs tmpfs /run && exec \"$@\"")
        .args(["sh", "dpkg", "--root"])
        .arg(root)
        .args(["--force-script-chrootless", "--force-depends"])
        .args(args);
    run_within(cmd, Duration::from_secs(120))
}

/// Whether `path` exists, symlinks included (a dangling one counts).
fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// `dpkg -i`, then what systemd creates at the first start, then `dpkg -r` (keeps it) and
/// `dpkg -P` (removes it, and nothing of other services).
fn install_remove_and_purge_with_dpkg(dir: &TestDir, deb: &Path) {
    let root = dir.sub("dpkg-root");
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();

    dpkg_in(&root, &["--install", &deb.display().to_string()]);
    assert!(
        root.join("usr/bin/streme").is_file(),
        "dpkg -i unpacked the binary"
    );
    assert!(root.join("etc/streme/streme.env").is_file());
    // postinst ran, under DPKG_ROOT: the unit is enabled in the scratch root.
    let wants = root.join("etc/systemd/system/multi-user.target.wants/streme.service");
    assert!(
        exists(&wants),
        "postinst enabled the unit in the scratch root: {}",
        wants.display()
    );

    // The first start under DynamicUser=yes: systemd makes /var/{cache,lib}/private/streme and
    // points /var/{cache,lib}/streme at them. Neighbours of other services must survive.
    let written = [
        "var/cache/private/streme/index",
        "var/cache/private/streme/segments/0000",
        "var/lib/private/streme/peer-id",
    ];
    for file in written {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"written by the service").unwrap();
    }
    for kind in ["cache", "lib"] {
        std::os::unix::fs::symlink("private/streme", root.join(format!("var/{kind}/streme")))
            .unwrap();
    }
    let others = ["var/cache/private/other/keep", "var/lib/other/keep"];
    for file in others {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"another service's").unwrap();
    }

    dpkg_in(&root, &["--remove", "streme"]);
    assert!(
        !exists(&root.join("usr/bin/streme")),
        "dpkg -r removes the binary"
    );
    assert!(
        root.join("etc/streme/streme.env").is_file(),
        "dpkg -r keeps the conffile"
    );
    for file in written {
        assert!(
            root.join(file).is_file(),
            "dpkg -r keeps what the service wrote: {file}"
        );
    }
    assert!(
        root.join("var/cache/streme/index").is_file(),
        "and the link to it"
    );

    dpkg_in(&root, &["--purge", "streme"]);
    for gone in [
        "var/cache/streme",
        "var/cache/private/streme",
        "var/lib/streme",
        "var/lib/private/streme",
        "etc/streme/streme.env",
        "etc/systemd/system/multi-user.target.wants/streme.service",
    ] {
        assert!(!exists(&root.join(gone)), "dpkg -P leaves {gone}");
    }
    for file in others {
        assert!(root.join(file).is_file(), "dpkg -P removed {file}");
    }
    assert!(
        root.join("var/cache/private").is_dir(),
        "the directory shared by every DynamicUser service stays"
    );
    let status = read(&root.join("var/lib/dpkg/status"));
    assert!(
        !status.contains("Package: streme"),
        "dpkg forgot the package:\n{status}"
    );
}

#[test]
fn the_arm_variants_ship_a_raspberry_pi_profile_as_the_conffile() {
    let dir = TestDir::new("deb-variant");
    for (variant, profile) in [("arm64", "rpi4"), ("armhf", "rpi3")] {
        let deb = build_deb(&dir, Some(variant));
        assert_eq!(
            field(&deb, "Package"),
            "streme",
            "{variant} keeps the package name"
        );
        let root = dir.sub(&format!("root-{variant}"));
        run("dpkg-deb", &[Path::new("-x"), &deb, &root]);
        assert_eq!(
            read(&root.join("etc/streme/streme.env")),
            read(&repo().join(format!("board/{profile}.env"))),
            "{variant} ships the {profile} profile"
        );
        let entries = contents(&deb);
        assert_eq!(entry(&entries, "etc/streme/streme.env").mode, "-rw-------");
        entry(&entries, "usr/bin/streme");
    }
}
