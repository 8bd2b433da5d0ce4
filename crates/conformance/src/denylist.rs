//! Conformance cases for [`switchboard_core::TokenDenylist`] and the tokens service.

use std::time::Duration;

use switchboard_core::{Timestamp, TokenCheck, TokenId, UserId};

use crate::harness::{TestEngine, eventually};

fn jti(s: &str) -> TokenId {
    TokenId::new(s).expect("valid jti")
}

/// A denied id stays denied until its time, then is forgotten.
pub async fn denied_until_expiry_then_forgotten(t: &TestEngine) {
    let d = &t.engine.denylist;
    let id = jti("tok-expiring");
    let until = Timestamp::now().plus(Duration::from_millis(600));
    d.deny(&id, until).await.unwrap();
    assert_eq!(d.denied_until(&id).await.unwrap(), Some(until));
    eventually(Duration::from_secs(3), "denial ends at its time", || async {
        d.denied_until(&id).await.unwrap().is_none()
    })
    .await;
    assert_eq!(d.denied_until(&jti("tok-never")).await.unwrap(), None);
}

/// Denying again keeps the later of the two times.
pub async fn deny_keeps_the_later_time(t: &TestEngine) {
    let d = &t.engine.denylist;
    let id = jti("tok-twice");
    let later = Timestamp::now().plus(Duration::from_secs(120));
    let sooner = Timestamp::now().plus(Duration::from_secs(60));
    d.deny(&id, later).await.unwrap();
    d.deny(&id, sooner).await.unwrap();
    assert_eq!(d.denied_until(&id).await.unwrap(), Some(later));
    let latest = Timestamp::now().plus(Duration::from_secs(300));
    d.deny(&id, latest).await.unwrap();
    assert_eq!(d.denied_until(&id).await.unwrap(), Some(latest));
}

/// A token that has already expired needs no denial.
pub async fn deny_in_the_past_stores_nothing(t: &TestEngine) {
    let d = &t.engine.denylist;
    let id = jti("tok-old");
    d.deny(&id, Timestamp::from_millis(Timestamp::now().as_millis() - 5000)).await.unwrap();
    assert_eq!(d.denied_until(&id).await.unwrap(), None);
}

/// Undeny removes the id and says whether it was there.
pub async fn undeny_removes(t: &TestEngine) {
    let d = &t.engine.denylist;
    let id = jti("tok-forgiven");
    d.deny(&id, Timestamp::now().plus(Duration::from_secs(60))).await.unwrap();
    assert!(d.undeny(&id).await.unwrap());
    assert_eq!(d.denied_until(&id).await.unwrap(), None);
    assert!(!d.undeny(&id).await.unwrap());
}

/// Revoke-before times only move forward.
pub async fn revoke_before_never_moves_backwards(t: &TestEngine) {
    let d = &t.engine.denylist;
    let u = UserId::new("revoker").unwrap();
    assert_eq!(d.revoked_before(&u).await.unwrap(), None);
    let keep = Timestamp::now().plus(Duration::from_secs(3600));
    let t2 = Timestamp::now();
    let t1 = Timestamp::from_millis(t2.as_millis() - 60_000);
    assert_eq!(d.revoke_before(&u, t2, keep).await.unwrap(), t2);
    assert_eq!(d.revoke_before(&u, t1, keep).await.unwrap(), t2, "an earlier time does not un-revoke tokens");
    assert_eq!(d.revoked_before(&u).await.unwrap(), Some(t2));
    let t3 = t2.plus(Duration::from_secs(1));
    assert_eq!(d.revoke_before(&u, t3, keep).await.unwrap(), t3);
    assert_eq!(d.revoked_before(&UserId::new("someone-else").unwrap()).await.unwrap(), None);
}

/// The service combines both: denied jti, token issued before the revoke time, or valid.
pub async fn token_check_reports_denied_revoked_and_valid(t: &TestEngine) {
    let tokens = t.sb.tokens();
    let u = UserId::new("checked").unwrap();
    let id = jti("tok-checked");
    let issued = Timestamp::from_millis(Timestamp::now().as_millis() - 10_000);
    assert_eq!(tokens.check(Some(&id), &u, issued).await.unwrap(), TokenCheck::Valid);
    tokens.deny(&id, Timestamp::now().plus(Duration::from_secs(60))).await.unwrap();
    assert_eq!(tokens.check(Some(&id), &u, issued).await.unwrap(), TokenCheck::Denied);
    assert_eq!(tokens.check(None, &u, issued).await.unwrap(), TokenCheck::Valid);
    let at = tokens.revoke_before(&u, None).await.unwrap();
    assert_eq!(tokens.check(None, &u, issued).await.unwrap(), TokenCheck::Revoked);
    assert_eq!(tokens.check(None, &u, at.plus(Duration::from_secs(1))).await.unwrap(), TokenCheck::Valid);
}

/// JWT `iat` has whole seconds: a token issued in the same second as the revoke-before time (so
/// minted right after "log out everywhere else" answered) is valid; one from an earlier second is
/// revoked.
pub async fn revoke_before_counts_whole_seconds(t: &TestEngine) {
    let tokens = t.sb.tokens();
    let u = UserId::new("same-second").unwrap();
    let second = (Timestamp::now().as_millis() / 1000 - 5) * 1000;
    tokens.revoke_before(&u, Some(Timestamp::from_millis(second + 700))).await.unwrap();
    let minted_after = Timestamp::from_millis(second);
    assert_eq!(tokens.check(None, &u, minted_after).await.unwrap(), TokenCheck::Valid);
    let earlier = Timestamp::from_millis(second - 1000);
    assert_eq!(tokens.check(None, &u, earlier).await.unwrap(), TokenCheck::Revoked);
}
