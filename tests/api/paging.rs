//! The paging parameters of every paged list (`limit`, `cursor`) are read by one parser
//! (http/paging.rs): each route refuses the same mistakes with the same code and message,
//! as openapi.yaml and the clients know them.

use meter_tests::TestApp;

const P: &str = "/api/subscription";
const LIMIT: &str = "`limit` must be a whole number from 1 to 100";
const CURSOR: &str = "`cursor` is not a cursor this route gave";

#[tokio::test]
async fn every_paged_list_refuses_bad_paging_with_one_code_and_message() {
    let app = TestApp::spawn().await;
    let (admin, service) = (app.admin_key.clone(), app.service_key.clone());
    for (key, path, code, message) in [
        (&admin, "/admin/users?limit=0", "invalid_parameter", LIMIT),
        (&admin, "/admin/users?limit=x", "invalid_parameter", LIMIT),
        (
            &admin,
            "/admin/users?cursor=a%23b",
            "invalid_parameter",
            CURSOR,
        ),
        (&admin, "/admin/orgs?limit=101", "invalid_parameter", LIMIT),
        (
            &admin,
            "/admin/orgs?cursor=a%20b",
            "invalid_parameter",
            CURSOR,
        ),
        (
            &admin,
            "/admin/wallets?limit=-1",
            "invalid_parameter",
            LIMIT,
        ),
        (
            &admin,
            "/admin/wallets?cursor=team/x",
            "invalid_parameter",
            CURSOR,
        ),
        (
            &admin,
            "/admin/alerts?limit=101",
            "invalid_parameter",
            LIMIT,
        ),
        (
            &service,
            "/org/acme/members?limit=0",
            "invalid_parameter",
            LIMIT,
        ),
        (
            &service,
            "/org/acme/alerts?limit=101",
            "invalid_parameter",
            LIMIT,
        ),
        (&service, "/alerts/ann?limit=0", "invalid_parameter", LIMIT),
        // The limit is checked before the cursor.
        (
            &admin,
            "/admin/users?limit=0&cursor=a%23b",
            "invalid_parameter",
            LIMIT,
        ),
        (
            &admin,
            "/admin/orgs?cursor=a&cursor=b",
            "invalid_parameter",
            "`cursor` is given twice",
        ),
        (
            &admin,
            "/admin/wallets?page=2",
            "unknown_parameter",
            "unknown query parameter `page`",
        ),
    ] {
        let r = app.get_as(key, &format!("{P}{path}")).await;
        assert_eq!(
            (
                r.status.as_u16(),
                r.code(),
                r.body["error"]["message"].as_str()
            ),
            (400, code, Some(message)),
            "{path}: {}",
            r.body
        );
    }
}
