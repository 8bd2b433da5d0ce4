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
    assert_eq!(tokens.check(&[&id], &u, issued).await.unwrap(), TokenCheck::Valid);
    tokens.deny(&id, Timestamp::now().plus(Duration::from_secs(60))).await.unwrap();
    assert_eq!(tokens.check(&[&id], &u, issued).await.unwrap(), TokenCheck::Denied);
    assert_eq!(tokens.check(&[], &u, issued).await.unwrap(), TokenCheck::Valid);
    let at = tokens.revoke_before(&u, None).await.unwrap();
    assert_eq!(tokens.check(&[], &u, issued).await.unwrap(), TokenCheck::Revoked);
    assert_eq!(tokens.check(&[], &u, at.plus(Duration::from_secs(1))).await.unwrap(), TokenCheck::Valid);
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
    assert_eq!(tokens.check(&[], &u, minted_after).await.unwrap(), TokenCheck::Valid);
    let earlier = Timestamp::from_millis(second - 1000);
    assert_eq!(tokens.check(&[], &u, earlier).await.unwrap(), TokenCheck::Revoked);
}

/// A whole token can be denied (apps whose tokens carry no `jti`): it is stored by its digest,
/// never as such, whatever its length; other tokens stay valid; bad tokens are refused.
pub async fn a_whole_token_is_denied_by_its_digest(t: &TestEngine) {
    let tokens = t.sb.tokens();
    let u = UserId::new("whole").unwrap();
    let token = format!("eyJhbGciOiJIUzI1NiJ9.{}.sig", "x".repeat(200));
    assert!(token.len() > 128, "longer than any jti");
    let id = tokens.deny_token(&token, Timestamp::now().plus(Duration::from_secs(60))).await.unwrap();
    assert_eq!(id, switchboard_core::denylist::token_digest(&token).unwrap());
    assert!(id.as_str().starts_with("sha256:") && id.as_str().len() == 71);
    let issued = Timestamp::now();
    assert_eq!(tokens.check(&[&id], &u, issued).await.unwrap(), TokenCheck::Denied);
    let other = switchboard_core::denylist::token_digest(&format!("{token}2")).unwrap();
    assert_eq!(tokens.check(&[&other], &u, issued).await.unwrap(), TokenCheck::Valid);
    assert!(tokens.denied_until(&id).await.unwrap().is_some());
    assert!(tokens.undeny(&id).await.unwrap());
    assert_eq!(tokens.check(&[&id], &u, issued).await.unwrap(), TokenCheck::Valid);
    let later = Timestamp::now().plus(Duration::from_secs(60));
    assert!(tokens.deny_token("", later).await.is_err());
    let huge = "t".repeat(switchboard_core::denylist::MAX_RAW_TOKEN_BYTES + 1);
    assert!(tokens.deny_token(&huge, later).await.is_err());
}
