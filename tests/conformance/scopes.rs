//! Issue 18: the org and team named on an event are stored with it and read back
//! exactly (the export reads them; ingest of budget counters needs them).

use std::sync::Arc;

use meter_core::domain::{OrgId, TeamId, UsageEvent};
use meter_core::store::{RecordOutcome, Store};

use crate::fixtures::*;

pub async fn an_events_org_and_team_round_trip(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("olga"));
    let acme = OrgId::parse("acme").unwrap();
    let search = TeamId::parse("search").unwrap();
    let with_team = UsageEvent {
        org_id: Some(acme.clone()),
        team_id: Some(search.clone()),
        ..event(&t, &u, "sc-1", 10, "0.1")
    };
    let with_org = UsageEvent {
        org_id: Some(acme.clone()),
        ..event(&t, &u, "sc-2", 10, "0.1")
    };
    let alone = event(&t, &u, "sc-3", 10, "0.1");
    let all = [with_team.clone(), with_org.clone(), alone.clone()];
    assert_eq!(
        store.record_events(&all).await.unwrap(),
        vec![RecordOutcome::Recorded; 3]
    );
    let mut stored = store.user_records(&t, &u).await.unwrap().events;
    stored.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    assert_eq!(stored, all.to_vec());
}
