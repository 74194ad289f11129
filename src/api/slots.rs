//! Fair shares of the API's expensive work (compiling, testing and
//! backtesting rules): a global cap, and in front of it a per-tenant cap, so
//! that one tenant holds at most its share of the global slots however many
//! requests it sends. Owns only counting; what the work is, and what the client
//! sees when it cannot have a slot, is the handlers' business.
//!
//! Waiting is fair: tokio's semaphores hand out permits in request order, and a
//! tenant queues on its own semaphore first, so at most `per_tenant` of its
//! requests wait for a global slot at any time.

use crate::model::tenant::TenantId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Rule compiles and tests at once, server-wide (each is ≈1.2 s of one core).
pub const COMPILE_SLOTS: usize = 2;
/// Rule compiles and tests at once per tenant.
pub const COMPILE_SLOTS_PER_TENANT: usize = 1;
/// Backtests at once, server-wide.
pub const BACKTEST_SLOTS: usize = 2;
/// Backtests at once per tenant; one more is answered 429 with `Retry-After`.
pub const BACKTEST_SLOTS_PER_TENANT: usize = 1;

pub struct TenantSlots {
    global: Arc<Semaphore>,
    global_total: usize,
    per_tenant: usize,
    /// Semaphores of tenants that hold or wait for a slot; idle ones are removed.
    tenants: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
}

/// A slot: released when dropped (move it into the work it pays for).
#[derive(Debug)]
pub struct Slot {
    _global: OwnedSemaphorePermit,
    _tenant: OwnedSemaphorePermit,
}

/// Why [`TenantSlots::try_acquire`] gave no slot.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    #[error("this tenant already runs {0} of these at once")]
    Tenant(usize),
    #[error("the server already runs {0} of these at once")]
    Global(usize),
}

impl TenantSlots {
    pub fn new(global: usize, per_tenant: usize) -> TenantSlots {
        let global = global.max(1);
        TenantSlots {
            global: Arc::new(Semaphore::new(global)),
            global_total: global,
            per_tenant: per_tenant.max(1),
            tenants: Mutex::default(),
        }
    }

    /// Global slots free now.
    pub fn global_slots(&self) -> usize {
        self.global.available_permits()
    }

    fn tenant(&self, tenant: &TenantId) -> Arc<Semaphore> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A tenant's semaphore is idle when only this map holds it (no permit, no waiter).
        tenants.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
        tenants.entry(tenant.clone()).or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant))).clone()
    }

    /// Waits for a slot: behind the tenant's own requests first, then in line
    /// with the other tenants for a global one.
    pub async fn acquire(&self, tenant: &TenantId) -> Slot {
        let own = self.tenant(tenant);
        // Neither semaphore is ever closed, so acquiring cannot fail.
        let tenant_permit = own.acquire_owned().await.expect("tenant slots are never closed");
        let global_permit = self.global.clone().acquire_owned().await.expect("global slots are never closed");
        Slot { _global: global_permit, _tenant: tenant_permit }
    }

    /// A slot now, or why not.
    pub fn try_acquire(&self, tenant: &TenantId) -> Result<Slot, SlotError> {
        let own = self.tenant(tenant);
        let tenant_permit = own.try_acquire_owned().map_err(|error| match error {
            TryAcquireError::NoPermits | TryAcquireError::Closed => SlotError::Tenant(self.per_tenant),
        })?;
        let global_permit = self.global.clone().try_acquire_owned().map_err(|_| SlotError::Global(self.global_total))?;
        Ok(Slot { _global: global_permit, _tenant: tenant_permit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_tenant_cannot_hold_every_global_slot() {
        let slots = Arc::new(TenantSlots::new(2, 1));
        let (busy, other) = (TenantId::trusted("t_busy"), TenantId::trusted("t_other"));
        let first = slots.acquire(&busy).await;
        // The busy tenant's next requests wait behind its own first one…
        let mut queued = Vec::new();
        for _ in 0..3 {
            let (slots, busy) = (slots.clone(), busy.clone());
            queued.push(tokio::spawn(async move { slots.acquire(&busy).await }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(queued.iter().all(|task| !task.is_finished()));
        // …and another tenant gets the second global slot at once.
        let theirs = tokio::time::timeout(Duration::from_millis(200), slots.acquire(&other)).await.expect("another tenant is not starved");
        drop(theirs);
        drop(first);
        for task in queued {
            drop(tokio::time::timeout(Duration::from_secs(5), task).await.expect("the queue drains").expect("task"));
        }
        assert_eq!(slots.global_slots(), 2);
        assert_eq!(slots.tenants.lock().unwrap().len(), 2, "idle tenants are dropped on the next acquire");
        drop(slots.try_acquire(&other).expect("free"));
        assert_eq!(slots.tenants.lock().unwrap().len(), 1);
    }

    #[test]
    fn try_acquire_refuses_beyond_the_tenant_and_global_caps() {
        let slots = TenantSlots::new(2, 1);
        let (a, b, c) = (TenantId::trusted("t_a"), TenantId::trusted("t_b"), TenantId::trusted("t_c"));
        let held_a = slots.try_acquire(&a).expect("first of a");
        assert_eq!(slots.try_acquire(&a).expect_err("second of a"), SlotError::Tenant(1));
        let held_b = slots.try_acquire(&b).expect("first of b");
        assert_eq!(slots.try_acquire(&c).expect_err("no global slot"), SlotError::Global(2));
        drop(held_a);
        let _held_c = slots.try_acquire(&c).expect("a slot freed");
        drop(held_b);
    }
}
