//! The file store under `kill -9`: a child process saves in a loop and is
//! killed at random moments; the file must always be readable and never
//! older than the last save that returned.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use refresh_endpoint::Secret;
use refresh_endpoint::store::{FileStore, Saved, Store};
use refresh_endpoint::tokens::Tokens;

const CHILD_ENV: &str = "REFRESH_ENDPOINT_FILE_STORE_CHILD";

fn tokens(n: u64) -> Tokens {
    Tokens::new(
        Secret::new(format!("access-{n}")),
        Secret::new(format!("refresh-{n}")),
    )
}

fn counter(tokens: &Tokens) -> u64 {
    tokens
        .refresh_token
        .expose()
        .trim_start_matches("refresh-")
        .parse()
        .unwrap()
}

/// Runs only as the child of `survives_sigkill_at_any_moment`: saves
/// `refresh-1, refresh-2, …` after whatever the file holds, printing each
/// number once its save has returned.
#[test]
#[ignore = "the child process of survives_sigkill_at_any_moment"]
fn file_store_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = FileStore::new(path);
        let mut current = store.load().await.unwrap();
        loop {
            let next = tokens(current.as_ref().map_or(1, |t| counter(t) + 1));
            let expected = current.as_ref().map(|t| &t.refresh_token);
            assert_eq!(store.save(expected, &next).await.unwrap(), Saved::Written);
            println!("saved {}", counter(&next));
            current = Some(next);
        }
    });
}

#[test]
fn survives_sigkill_at_any_moment() {
    let dir = std::env::temp_dir().join(format!(
        "refresh-endpoint-file-store-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("session.json");
    let exe = std::env::current_exe().unwrap();
    let mut last_acknowledged = 0;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    for round in 0..200u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "file_store_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Let it save a varying number of times, then kill it mid-loop.
        let saves = 1 + round % 5;
        let mut seen = 0;
        while seen < saves {
            let line = lines.next().expect("the child saves").unwrap();
            if let Some(n) = line.strip_prefix("saved ") {
                last_acknowledged = n.parse().unwrap();
                seen += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // A save acknowledged after we stopped reading still counts.
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("saved ") {
                last_acknowledged = n.parse().unwrap();
            }
        }

        let stored = runtime
            .block_on(FileStore::new(&path).load())
            .unwrap_or_else(|e| panic!("round {round}: unreadable file: {e}"))
            .expect("the file exists");
        let n = counter(&stored);
        assert!(
            n == last_acknowledged || n == last_acknowledged + 1,
            "round {round}: file holds {n}, last acknowledged save was {last_acknowledged}"
        );
        assert_eq!(
            stored,
            tokens(n),
            "round {round}: access and refresh token from one save"
        );
    }

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the owner can read the tokens");
    }
    let litter: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(
        litter.len() <= 2,
        "at most the file and one temporary file: {litter:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn compare_and_swap_refuses_a_stale_writer_and_clear_keeps_newer_tokens() {
    let dir = std::env::temp_dir().join(format!("refresh-endpoint-cas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = FileStore::new(dir.join("s.json"));
    assert_eq!(store.save(None, &tokens(1)).await.unwrap(), Saved::Written);
    assert_eq!(
        store.save(None, &tokens(2)).await.unwrap(),
        Saved::Conflict(Some(tokens(1)))
    );
    assert_eq!(
        store
            .save(Some(&tokens(1).refresh_token), &tokens(2))
            .await
            .unwrap(),
        Saved::Written
    );
    // A stale writer (expecting 1) cannot overwrite 2.
    assert_eq!(
        store
            .save(Some(&tokens(1).refresh_token), &tokens(3))
            .await
            .unwrap(),
        Saved::Conflict(Some(tokens(2)))
    );
    // Clearing a dead token leaves the newer one.
    store.clear(&tokens(1).refresh_token).await.unwrap();
    assert_eq!(store.load().await.unwrap(), Some(tokens(2)));
    store.clear(&tokens(2).refresh_token).await.unwrap();
    assert_eq!(store.load().await.unwrap(), None);
    std::fs::write(dir.join("s.json"), b"{not json").unwrap();
    let error = store.load().await.unwrap_err();
    assert!(
        !error.is_retryable(),
        "a corrupt file is not retried: {error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
