//! The pages in a real browser: headless Chromium (Debian's package) loads
//! the index and an announcement page from the running daemon and the test
//! checks what a person sees: titles, text, languages, feed links, and the
//! writing direction of a right-to-left page.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::Site;

/// Finds Chromium, installing Debian's package when missing and allowed.
fn chromium() -> PathBuf {
    let find = || {
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|name| {
                let out = Command::new("sh")
                    .arg("-c")
                    .arg(format!("command -v {name}"))
                    .output()
                    .ok()?;
                out.status
                    .success()
                    .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
            })
    };
    support::ensure_debian_package("chromium", || find().is_some());
    find().expect("headless Chromium is needed: `apt-get install -y chromium` (the test installs it itself when run as root)")
}

/// The DOM after Chromium has loaded and rendered `url`.
fn rendered_dom(browser: &PathBuf, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=412,915",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn index_and_pages_in_a_real_browser() {
    let browser = chromium();
    let site = Site::for_daemon("");
    site.put(
        "tram.uk.txt",
        "Трамвай №2 змінює маршрут\n\nЧерез ремонт колії на вулиці Городоцькій трамвай курсуватиме об’їзною дорогою до кінця місяця.\n",
    );
    site.put(
        "school.ar.md",
        "---\ntitle: التسجيل في الصف التمهيدي\n---\nيبدأ التسجيل في الصف التمهيدي للعام الدراسي الجديد يوم الاثنين.\n",
    );
    site.put(
        "library.md",
        "# Library opens late\n\nThe central library stays open until 21:00 on Thursdays.\n",
    );
    let d = site.serve();
    let base = format!("http://{}", d.addr);

    let index = rendered_dom(&browser, &format!("{base}/"));
    assert!(index.contains("<title>Test city</title>"), "{index}");
    for title in [
        "Трамвай №2 змінює маршрут",
        "التسجيل في الصف التمهيدي",
        "Library opens late",
    ] {
        assert!(index.contains(title), "index shows {title}");
    }
    for name in ["Українська", "العربية", "English"] {
        assert!(index.contains(name), "index offers the {name} feeds");
    }
    assert!(
        index.contains(r#"<li lang="ar" dir="rtl">"#),
        "Arabic entry marked right-to-left"
    );
    assert!(
        index.contains(r#"type="application/atom+xml" hreflang="uk""#),
        "feed autodiscovery per language"
    );

    let page = rendered_dom(&browser, &format!("{base}/ar/school.html"));
    assert!(page.contains(r#"<html lang="ar" dir="rtl">"#), "{page}");
    assert!(page.contains("<h1>التسجيل في الصف التمهيدي</h1>"));
    assert!(page.contains("يبدأ التسجيل"), "full text shown");

    let page = rendered_dom(&browser, &format!("{base}/uk/tram.html"));
    assert!(
        page.contains("вулиці Городоцькій трамвай"),
        "re-joined text shown"
    );
    assert!(
        page.contains(r#"href="../uk/atom.xml""#) || page.contains(r#"href="atom.xml""#),
        "feed links"
    );
}
