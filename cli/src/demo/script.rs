//! The scripted changes: made over real HTTP on one side, then watched
//! arriving on the other. Each step prints the change, the engine's events
//! as they come (with the time since the change), and the row as the other
//! side now holds it. After the script, [`tick`] repeats a small change on
//! alternate sides for as long as the demo runs.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use dualwrite::checkpoint::{Action, Direction};
use dualwrite::connector::{DataverseConnector, Key, Query, Row};

use super::feed::Feed;
use super::setup::World;
use super::view;

/// How long a change may take to arrive before the demo calls it missing.
const PATIENCE: Duration = Duration::from_secs(30);

/// The pause after each step, so its echo shows and one can read along.
const PAUSE: Duration = Duration::from_millis(1200);

/// One side of the demo, as the script addresses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Finops,
    Dataverse,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Finops => "finops",
            Side::Dataverse => "Dataverse",
        }
    }
}

/// The script's view of the world.
#[derive(Debug)]
pub struct Script<'a> {
    world: &'a World,
    feed: &'a mut Feed,
    step: usize,
}

impl<'a> Script<'a> {
    /// A script over `world`, printing through `feed`.
    pub fn new(world: &'a World, feed: &'a mut Feed) -> Script<'a> {
        Script {
            world,
            feed,
            step: 0,
        }
    }

    /// Runs every step once. Cancelling it stops between two requests; a
    /// change made is then still synced by the engine.
    pub async fn run(&mut self) -> anyhow::Result<()> {
        self.heading("A customer created in finops; plugins shape it on the way");
        self.customer(
            "US-901",
            json!({
                "OrganizationName": "Alpine Ski House", "PartyType": "Organization",
                "CustomerGroupId": "10", "SalesCurrencyCode": "USD", "PaymentTerms": "Net30",
                "PrimaryContactPhone": "(425) 555-0100", "CreditLimit": decimal("12500.555"),
            }),
            "create customer US-901 \"Alpine Ski House\" in usmf, phone (425) 555-0100, credit limit 12500.555",
        )
        .await?;
        self.arrives("customers", "US-901|usmf", &[Action::Written])
            .await;
        self.show_account("US-901", &["name", "telephone1", "creditlimit"])
            .await?;
        self.note("phone-normalize wrote the phone as E.164; currency-precision rounded the credit limit to 2 places");
        self.pause().await;

        self.heading("The same customer renamed in Dataverse");
        self.account(
            "US-901",
            json!({"name": "Alpine Ski House Ltd"}),
            "rename account US-901 to \"Alpine Ski House Ltd\"",
        )
        .await?;
        self.arrives("customers", "US-901|usmf", &[Action::Written])
            .await;
        self.show_customer("US-901", &["OrganizationName", "PrimaryContactPhone"])
            .await?;
        self.pause().await;

        self.heading("Its credit limit raised in finops");
        self.customer(
            "US-901",
            json!({"CreditLimit": 20000}),
            "set the credit limit of customer US-901 to 20000",
        )
        .await?;
        self.arrives("customers", "US-901|usmf", &[Action::Written])
            .await;
        self.show_account("US-901", &["name", "creditlimit"])
            .await?;
        self.pause().await;

        self.heading("An account created in Dataverse");
        let mut account = object(json!({
            "name": "Trey Research", "customertypecode": 3, "creditlimit": 7500,
        }));
        let usmf = Key::single("cdm_companycode", "usmf");
        DataverseConnector::bind(&mut account, "msdyn_company", "cdm_companies", &usmf);
        self.account(
            "CE-901",
            Value::Object(account),
            "create account CE-901 \"Trey Research\" in company usmf, credit limit 7500",
        )
        .await?;
        self.arrives("customers", "CE-901|usmf", &[Action::Written])
            .await;
        self.show_customer("CE-901", &["OrganizationName", "CreditLimit", "PartyType"])
            .await?;
        self.pause().await;

        self.heading("That account deleted in Dataverse");
        self.delete(Side::Dataverse, "CE-901", "delete account CE-901")
            .await?;
        self.arrives("customers", "CE-901|usmf", &[Action::Deleted])
            .await;
        self.show_customer("CE-901", &[]).await?;
        self.pause().await;

        self.heading("The first customer deleted in finops");
        self.delete(Side::Finops, "US-901", "delete customer US-901")
            .await?;
        self.arrives("customers", "US-901|usmf", &[Action::Deleted])
            .await;
        self.show_account("US-901", &[]).await?;
        self.pause().await;

        self.heading("A vendor contact created in finops, on another map");
        self.finops(
            "contacts",
            "ContactPersons",
            ("ContactPersonId", "CP-901"),
            "usmf",
            json!({
                "FirstName": "Ana", "LastName": "Novak", "Phone": "206 555 0142",
                "AssociatedContactType": "Vendor", "AssociatedContactNumber": "VUS-001",
            }),
            "create contact CP-901 \"Ana Novak\" of vendor VUS-001, phone 206 555 0142",
        )
        .await?;
        self.arrives("contacts", "CP-901|usmf", &[Action::Written])
            .await;
        self.show_dv(
            "contacts",
            "contact",
            ("msdyn_contactpersonid", "CP-901"),
            &["firstname", "lastname", "telephone1"],
        )
        .await?;
        self.pause().await;

        self.heading("A phone number no plugin can read: the row goes to the error queue");
        self.customer(
            "US-902",
            json!({
                "OrganizationName": "Litware, Inc.", "PartyType": "Organization",
                "PrimaryContactPhone": "call the front desk",
            }),
            "create customer US-902 \"Litware, Inc.\" with phone \"call the front desk\"",
        )
        .await?;
        self.arrives("customers", "US-902|usmf", &[Action::Parked])
            .await;
        self.show_account("US-902", &[]).await?;
        self.pause().await;

        self.heading("Fixed at the source, and the failed change discarded from the error queue");
        self.customer(
            "US-902",
            json!({"PrimaryContactPhone": "+1 (425) 555-0175"}),
            "set the phone of customer US-902 to +1 (425) 555-0175",
        )
        .await?;
        self.world
            .engine
            .checkpoints()
            .discard("customers", Direction::LeftToRight, "US-902|usmf")
            .context("discarding the parked change of customers US-902|usmf")?;
        self.note(
            "an operator discards the failed change of US-902; the fix queued behind it flows",
        );
        self.arrives("customers", "US-902|usmf", &[Action::Written])
            .await;
        self.show_account("US-902", &["name", "telephone1"]).await?;
        self.pause().await;

        self.heading("A vendor of a company the vendors map leaves out (company-filter)");
        self.finops(
            "vendors",
            "VendorsV2",
            ("VendorAccountNumber", "VGB-901"),
            "gbsi",
            json!({"VendorOrganizationName": "Proseware Supplies", "VendorPartyType": "Organization"}),
            "create vendor VGB-901 \"Proseware Supplies\" in company gbsi",
        )
        .await?;
        self.arrives(
            "vendors",
            "VGB-901|gbsi",
            &[Action::Skipped, Action::Filtered],
        )
        .await;
        self.show_dv(
            "msdyn_vendors",
            "vendor",
            ("msdyn_vendoraccountnumber", "VGB-901"),
            &[],
        )
        .await?;
        self.pause().await;

        self.heading("A customer whose group does not exist yet: it waits for the lookup");
        self.customer(
            "US-903",
            json!({
                "OrganizationName": "Wingtip Toys", "PartyType": "Organization",
                "CustomerGroupId": "40",
            }),
            "create customer US-903 \"Wingtip Toys\" in customer group 40, which does not exist yet",
        )
        .await?;
        self.arrives("customers", "US-903|usmf", &[Action::Waiting])
            .await;
        self.finops(
            "customer-groups",
            "CustomerGroups",
            ("CustomerGroupId", "40"),
            "usmf",
            json!({"Description": "Online customers", "PaymentTermId": "Net10"}),
            "create customer group 40 \"Online customers\"",
        )
        .await?;
        self.arrives("customer-groups", "40|usmf", &[Action::Written])
            .await;
        self.arrives("customers", "US-903|usmf", &[Action::Written])
            .await;
        self.show_account("US-903", &["name"]).await?;
        self.pause().await;
        Ok(())
    }

    /// One repeated change, on alternate sides: the credit limit of seeded
    /// customer US-001 in finops, the description of seeded account CE-001
    /// in Dataverse.
    pub async fn tick(&mut self, round: u64) -> anyhow::Result<()> {
        if round.is_multiple_of(2) {
            let limit = 5000 + 250 * (round / 2 + 1);
            self.customer(
                "US-001",
                json!({ "CreditLimit": limit }),
                &format!("set the credit limit of customer US-001 to {limit}"),
            )
            .await?;
            self.arrives("customers", "US-001|usmf", &[Action::Written])
                .await;
            self.show_account("US-001", &["creditlimit"]).await
        } else {
            let memo = format!("Called back, round {}", round / 2 + 1);
            self.account(
                "CE-001",
                json!({ "description": memo }),
                &format!("set the description of account CE-001 to {memo:?}"),
            )
            .await?;
            self.arrives("customers", "CE-001|usmf", &[Action::Written])
                .await;
            self.show_customer("CE-001", &["SalesMemo"]).await
        }
    }

    /// Prints every event for `span`.
    pub async fn idle(&mut self, span: Duration) {
        self.feed.idle(span).await;
    }

    fn heading(&mut self, text: &str) {
        self.step += 1;
        view::heading(&format!("{}. {text}", self.step));
    }

    fn note(&self, text: &str) {
        view::note(self.feed.start, text);
    }

    /// Creates or updates customer `number` of usmf in finops.
    async fn customer(&mut self, number: &str, row: Value, what: &str) -> anyhow::Result<()> {
        self.finops(
            "customers",
            "CustomersV3",
            ("CustomerAccount", number),
            "usmf",
            row,
            what,
        )
        .await
    }

    /// Creates or updates the finops row of `entity` (synced by `map`)
    /// whose `field` is `value` in `company`, and notes the change.
    async fn finops(
        &mut self,
        map: &str,
        entity: &str,
        (field, value): (&str, &str),
        company: &str,
        row: Value,
        what: &str,
    ) -> anyhow::Result<()> {
        // The standard maps' keys: the entity's own field, then the company.
        self.made(Side::Finops, map, &format!("{value}|{company}"), what);
        let key = Key::new().text("dataAreaId", company).text(field, value);
        self.world
            .fo
            .upsert(entity, &key, &object(row))
            .await
            .with_context(|| format!("the demo's change to finops {entity}{key}"))?;
        Ok(())
    }

    /// Creates or updates an account of usmf in Dataverse, and notes it.
    async fn account(&mut self, number: &str, row: Value, what: &str) -> anyhow::Result<()> {
        self.made(
            Side::Dataverse,
            "customers",
            &format!("{number}|usmf"),
            what,
        );
        let key = Key::single("accountnumber", number);
        self.world
            .dv
            .upsert("accounts", &key, &object(row))
            .await
            .with_context(|| format!("the demo's change to Dataverse accounts{key}"))?;
        Ok(())
    }

    /// Deletes customer (finops) or account (Dataverse) `number` of usmf.
    async fn delete(&mut self, side: Side, number: &str, what: &str) -> anyhow::Result<()> {
        let key = format!("{number}|usmf");
        self.made(side, "customers", &key, what);
        match side {
            Side::Finops => {
                let full = Key::new()
                    .text("dataAreaId", "usmf")
                    .text("CustomerAccount", number);
                self.world.fo.delete("CustomersV3", &full).await
            }
            Side::Dataverse => {
                self.world
                    .dv
                    .delete("accounts", &Key::single("accountnumber", number))
                    .await
            }
        }
        .with_context(|| format!("the demo's delete of customers {key} in {}", side.name()))?;
        Ok(())
    }

    /// Prints a change about to be made and starts its clock.
    fn made(&mut self, side: Side, map: &str, key: &str, what: &str) {
        view::line(self.feed.start, side.name(), what);
        self.feed.changed(map, key);
    }

    /// Ends a step: its echo shows, and one can read along.
    async fn pause(&mut self) {
        self.feed.idle(PAUSE).await;
    }

    /// Waits for the engine to report `whats` for `key` of `map`; a change
    /// that does not arrive in time is noted as missing.
    async fn arrives(&mut self, map: &str, key: &str, whats: &[Action]) {
        if !self.feed.wait_for(map, key, whats, PATIENCE).await {
            let names: Vec<&str> = whats.iter().map(|what| what.as_str()).collect();
            let missing = format!("{map} {key}: no {} within {:?}", names.join("/"), PATIENCE);
            view::note(self.feed.start, &format!("MISSING: {missing}"));
            self.feed.missed.push(missing);
        }
    }

    async fn show_account(&mut self, number: &str, fields: &[&str]) -> anyhow::Result<()> {
        self.show_dv("accounts", "account", ("accountnumber", number), fields)
            .await
    }

    /// Prints `fields` of the Dataverse row of `table` whose `column` is
    /// `value` (or that there is none).
    async fn show_dv(
        &mut self,
        table: &str,
        noun: &str,
        (column, value): (&str, &str),
        fields: &[&str],
    ) -> anyhow::Result<()> {
        let query = Query {
            select: Vec::new(),
            filter: Some(format!("{column} eq '{value}'")),
        };
        let row = self
            .world
            .dv
            .query_all(table, &query)
            .await
            .with_context(|| format!("reading Dataverse {table} where {column} is {value}"))?
            .into_iter()
            .next();
        self.show(Side::Dataverse, noun, value, row, fields);
        Ok(())
    }

    async fn show_customer(&mut self, number: &str, fields: &[&str]) -> anyhow::Result<()> {
        let key = Key::new()
            .text("dataAreaId", "usmf")
            .text("CustomerAccount", number);
        let row = self
            .world
            .fo
            .get("CustomersV3", &key)
            .await
            .with_context(|| format!("reading finops CustomersV3{key}"))?;
        self.show(Side::Finops, "customer", number, row, fields);
        Ok(())
    }

    fn show(&self, side: Side, noun: &str, name: &str, row: Option<Row>, fields: &[&str]) {
        let text = match row {
            Some(_) if fields.is_empty() => format!("{noun} {name} is there"),
            Some(row) => format!("{noun} {name} now: {}", view::fields(&row, fields)),
            None => format!("no {noun} {name}"),
        };
        view::line(self.feed.start, side.name(), &text);
    }
}

/// An exact decimal as a JSON number.
fn decimal(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn object(value: Value) -> Row {
    match value {
        Value::Object(row) => row,
        _ => Row::new(),
    }
}
