//! Validated identifiers and the records the service keeps.

pub mod ids;
pub mod money;
pub mod records;

pub use ids::{
    BudgetId, EventId, GrantId, IdError, ModelId, OrgId, PlanName, ProviderId, TeamId, TenantId,
    UserId,
};
pub use records::{
    Adjustment, Alert, ApiKeyRecord, BudgetHold, Invoice, InvoiceStatus, LineItem, Metadata,
    PastTerms, Payer, Proration, Reservation, ReservationStatus, Role, Severity, Subscription,
    SubscriptionStatus, UsageEvent,
};
