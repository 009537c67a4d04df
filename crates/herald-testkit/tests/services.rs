//! The services themselves: whichever PostgreSQL and NATS were found or started, a test gets a
//! database of its own that it can write to and that is gone after its guard, and a NATS that
//! greets like one.

use sqlx::{Connection, PgConnection};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_database_is_fresh_usable_and_dropped_with_its_guard() {
    let (url, db) = herald_testkit::test_database().await;
    assert!(url.ends_with(db.name()), "{url} names {}", db.name());
    let mut c = PgConnection::connect(&url).await.expect("the test database accepts a connection");
    sqlx::query("CREATE TABLE t (x int)").execute(&mut c).await.expect("and a table");
    c.close().await.unwrap();

    let (other_url, other) = herald_testkit::test_database().await;
    assert_ne!(db.name(), other.name(), "every test gets its own database");
    let mut c = PgConnection::connect(&other_url).await.unwrap();
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 't'").fetch_one(&mut c).await.unwrap();
    assert_eq!(tables, 0, "a fresh database holds nothing of another test's");
    c.close().await.unwrap();

    let admin_url = herald_testkit::postgres::admin_url().await.unwrap();
    let name = db.name().to_string();
    drop(db);
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "{name} is dropped with its guard");
}

#[tokio::test]
async fn the_nats_url_greets_like_a_nats_server() {
    let url = herald_testkit::nats_url().await;
    let addr = url.strip_prefix("nats://").unwrap_or_else(|| panic!("not a nats:// URL: {url}"));
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("NATS accepts a connection");
    let mut head = [0u8; 5];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"INFO ");
}
