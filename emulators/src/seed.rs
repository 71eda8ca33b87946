//! Demo seed data and deterministic bulk rows (`--rows N`).
//!
//! Seeding runs only on an empty store, so a restart keeps what the demo
//! changed. Generated rows are a pure function of their index: the same N
//! gives the same rows on every machine.

use serde_json::{Map, Value, json};

use super::rows::{index_entries, primary_key};
use super::store::WriteConflict;
use super::{EmulatorError, Seed, ServiceKind, State};

const COMPANIES: &[(&str, &str, &str, &str)] = &[
    ("USMF", "Contoso Entertainment System USA", "USA", "USD"),
    ("DEMF", "Contoso Entertainment System Germany", "DEU", "EUR"),
    ("GBSI", "Contoso Orange Retail UK", "GBR", "GBP"),
];
const CURRENCIES: &[(&str, &str, &str)] = &[
    ("USD", "US Dollar", "$"),
    ("EUR", "Euro", "€"),
    ("GBP", "Pound Sterling", "£"),
    ("JPY", "Japanese Yen", "¥"),
];
const UNITS: &[(&str, &str)] = &[
    ("ea", "Each"),
    ("pcs", "Pieces"),
    ("kg", "Kilogram"),
    ("box", "Box"),
];
const GROUPS: &[(&str, &str)] = &[
    ("10", "Wholesale customers"),
    ("20", "Retail customers"),
    ("30", "Intercompany"),
];
const TERMS: &[(&str, &str, i64)] = &[
    ("Net10", "Net 10 days", 10),
    ("Net30", "Net 30 days", 30),
    ("COD", "Cash on delivery", 0),
];
const FIRST_NAMES: &[&str] = &["Ana", "Ben", "Chloe", "Dev", "Eva", "Femi"];
const LAST_NAMES: &[&str] = &["Silva", "Okafor", "Martin", "Patel", "Novak", "Adeyemi"];
const PRODUCTS: &[&str] = &["Speaker", "Headphones", "Amplifier", "Cable", "Microphone"];
const NAMES: &[&str] = &[
    "Adventure Works",
    "Fabrikam",
    "Northwind Traders",
    "Litware",
    "Tailspin Toys",
    "Wide World Importers",
];

struct DupError;

impl From<WriteConflict> for DupError {
    fn from(_: WriteConflict) -> Self {
        DupError
    }
}

/// Demo rows are owned, created and modified by the first client's
/// application user, as rows a user imported are.
fn owned_by_first_client(
    state: &State,
    table: &dualwrite::schema::TableDef,
    row: &mut Map<String, Value>,
) {
    let Some(client) = state.security.clients().first() else {
        return;
    };
    let user = json!(super::security::user_id(client));
    for name in ["createdby", "modifiedby", "ownerid", "owninguser"] {
        if table.field(name).is_some() {
            row.insert(format!("_{name}_value"), user.clone());
        }
    }
    if table.field("owningbusinessunit").is_some() {
        row.insert(
            "_owningbusinessunit_value".into(),
            json!(super::security::business_unit_id()),
        );
    }
    if table.field("owningteam").is_some() {
        row.insert("_owningteam_value".into(), Value::Null);
    }
}

/// Writes one seed row; returns its id (Dataverse) or encoded key (finops).
fn put(state: &State, table: &str, row: Value) -> Result<String, EmulatorError> {
    let fail = |message: String| EmulatorError::Seed {
        table: table.to_string(),
        message,
    };
    let def = state
        .metadata
        .table(table)
        .ok_or_else(|| fail("no such table".into()))?;
    let Value::Object(mut row) = row else {
        return Err(fail("not an object".into()));
    };
    if let Some(field) = row.keys().find(|k| !def.readable(k, &[])) {
        return Err(fail(format!("field {field} is not declared")));
    }
    let mut id = String::new();
    if state.kind == ServiceKind::Dataverse {
        let pk = def.primary_key.first().cloned().unwrap_or_default();
        let guid = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{table}/{}", Value::Object(row.clone())).as_bytes(),
        );
        id = guid.to_string();
        row.insert(pk, json!(id));
        row.insert("createdon".into(), json!("2024-01-01T00:00:00Z"));
        row.insert("modifiedon".into(), json!("2024-01-01T00:00:00Z"));
        owned_by_first_client(state, def, &mut row);
    }
    let pk = primary_key(def, &row).ok_or_else(|| fail("row lacks a key field".into()))?;
    let indexes = index_entries(def, &row);
    let dataverse = state.kind == ServiceKind::Dataverse;
    state
        .store
        .transact(|tx| {
            tx.put::<DupError>(
                table,
                &pk,
                None,
                row.clone(),
                &indexes,
                |r: &mut Map<String, Value>, v| {
                    if dataverse {
                        r.insert("versionnumber".into(), json!(v));
                    }
                },
            )
        })
        .map_err(|_| fail(format!("could not write {pk}")))?;
    Ok(if id.is_empty() { pk } else { id })
}

/// Seeds an empty store; a Dataverse store always gets the principals an
/// environment has (`owner::seed_principals`), whatever `seed` says.
pub(super) fn seed(state: &State, seed: Seed, rows: usize) -> Result<(), EmulatorError> {
    let empty = state.store.current_version()? == 0;
    if state.kind == ServiceKind::Dataverse {
        super::dataverse::owner::seed_principals(state, state.security.clients())?;
    }
    if !empty {
        return Ok(());
    }
    if seed == Seed::Demo {
        match state.kind {
            ServiceKind::Finops => seed_finops(state)?,
            ServiceKind::Dataverse => seed_dataverse(state)?,
        }
    }
    for i in 0..rows {
        let account = format!("BULK-{i:07}");
        let (code, _, country, currency) = COMPANIES[i % COMPANIES.len()];
        let name = format!("{} {i}", NAMES[i % NAMES.len()]);
        let limit = (i % 50) as i64 * 1000;
        let _id = match state.kind {
            ServiceKind::Finops => put(
                state,
                "CustomersV3",
                json!({
                    "dataAreaId": code.to_lowercase(), "CustomerAccount": account, "OrganizationName": name,
                    "PartyType": "Organization", "CustomerGroupId": GROUPS[i % GROUPS.len()].0, "CreditLimit": limit,
                    "SalesCurrencyCode": currency, "PartyCountry": country, "IsOneTimeCustomer": "No",
                }),
            )?,
            ServiceKind::Dataverse => put(
                state,
                "accounts",
                json!({
                    "accountnumber": account, "name": name, "creditlimit": limit, "customertypecode": 3,
                    "msdyn_partycountry": country,
                }),
            )?,
        };
    }
    state.store.flush()?;
    Ok(())
}

fn seed_finops(state: &State) -> Result<(), EmulatorError> {
    for (code, name, country, currency) in COMPANIES {
        put(
            state,
            "LegalEntities",
            json!({"LegalEntityId": code, "Name": name, "AddressCountryRegionId": country, "AccountingCurrency": currency}),
        )?;
    }
    for (code, name, symbol) in CURRENCIES {
        put(
            state,
            "Currencies",
            json!({"CurrencyCode": code, "Name": name, "Symbol": symbol}),
        )?;
    }
    for (symbol, text) in UNITS {
        put(
            state,
            "Units",
            json!({"UnitSymbol": symbol, "UnitDescription": text, "UnitClass": "Quantity", "DecimalPrecision": 0, "IsBaseUnit": "No", "IsSystemUnit": "No"}),
        )?;
    }
    for (c, (code, _, country, currency)) in COMPANIES.iter().enumerate() {
        let area = code.to_lowercase();
        for (id, text) in GROUPS {
            put(
                state,
                "CustomerGroups",
                json!({"dataAreaId": area, "CustomerGroupId": id, "Description": text, "PaymentTermId": "Net30"}),
            )?;
        }
        for (name, text, days) in TERMS {
            put(
                state,
                "PaymentTerms",
                json!({"dataAreaId": area, "Name": name, "Description": text, "NumberOfDays": days}),
            )?;
        }
        for i in 0..6 {
            let account = format!("{}-{:03}", &code[..2], i + 1);
            put(
                state,
                "CustomersV3",
                json!({
                    "dataAreaId": area, "CustomerAccount": account, "OrganizationName": format!("{} {}", NAMES[(i + c) % NAMES.len()], country),
                    "PartyType": "Organization", "CustomerGroupId": GROUPS[i % GROUPS.len()].0, "CreditLimit": (i as i64 + 1) * 5000,
                    "SalesCurrencyCode": currency, "PaymentTerms": TERMS[i % TERMS.len()].0, "PartyCountry": country,
                    "IsOneTimeCustomer": "No", "CreditLimitIsMandatory": if i % 2 == 0 { "Yes" } else { "No" },
                }),
            )?;
            put(
                state,
                "ContactPersons",
                json!({
                    "dataAreaId": area, "ContactPersonId": format!("{}-CP{:03}", &code[..2], i + 1), "FirstName": FIRST_NAMES[i],
                    "LastName": LAST_NAMES[i], "AssociatedContactType": "Customer", "AssociatedContactNumber": account,
                }),
            )?;
        }
        for i in 0..4 {
            put(
                state,
                "VendorsV2",
                json!({
                    "dataAreaId": area, "VendorAccountNumber": format!("V{}-{:03}", &code[..2], i + 1), "VendorOrganizationName": format!("{} Supplies {}", NAMES[(i + 2) % NAMES.len()], country),
                    "VendorPartyType": "Organization", "VendorGroupId": "10", "CurrencyCode": currency, "IsOneTimeVendor": "No",
                }),
            )?;
        }
        for (i, product) in PRODUCTS.iter().enumerate() {
            let item = format!("P{:04}", 1000 + i);
            put(
                state,
                "ReleasedProductsV2",
                json!({
                    "dataAreaId": area, "ItemNumber": item, "ProductNumber": item, "ProductName": product,
                    "ProductType": "Item", "SalesPrice": 10 * (i + 1), "InventoryUnitSymbol": "ea", "SalesUnitSymbol": "ea",
                }),
            )?;
        }
    }
    Ok(())
}

fn seed_dataverse(state: &State) -> Result<(), EmulatorError> {
    let mut currencies = Vec::new();
    for (code, name, symbol) in CURRENCIES {
        let row = json!({"isocurrencycode": code, "currencyname": name, "currencysymbol": symbol, "exchangerate": 1.0});
        currencies.push((*code, put(state, "transactioncurrencies", row)?));
    }
    for (symbol, text) in UNITS {
        put(
            state,
            "uoms",
            json!({"msdyn_symbol": symbol, "name": symbol, "msdyn_description": text}),
        )?;
    }
    for (c, (code, name, country, currency)) in COMPANIES.iter().enumerate() {
        let company = put(
            state,
            "cdm_companies",
            json!({"cdm_companycode": code, "cdm_name": name}),
        )?;
        let currency_id = currencies
            .iter()
            .find(|(k, _)| k == currency)
            .map(|(_, id)| id.clone());
        for (id, text) in GROUPS {
            let row = json!({"msdyn_groupid": id, "msdyn_description": text, "_msdyn_company_value": company});
            put(state, "msdyn_customergroups", row)?;
        }
        for (term, text, days) in TERMS {
            let row = json!({"msdyn_name": term, "msdyn_description": text, "msdyn_days": days, "_msdyn_company_value": company});
            put(state, "msdyn_paymentterms", row)?;
        }
        for i in 0..2 {
            let row = json!({
                "msdyn_vendoraccountnumber": format!("V{}-{:03}", &code[..2], i + 1),
                "msdyn_vendorname": format!("{} Supplies {country}", NAMES[(i + 2) % NAMES.len()]),
                "_msdyn_company_value": company,
            });
            put(state, "msdyn_vendors", row)?;
        }
        for i in 0..2 {
            let n = c * 2 + i;
            let account = json!({
                "accountnumber": format!("CE-{:03}", n + 1),
                "name": format!("{} {country}", NAMES[n % NAMES.len()]),
                "customertypecode": 3,
                "creditlimit": (n as i64 + 1) * 1000,
                "_msdyn_company_value": company,
                "_transactioncurrencyid_value": currency_id,
            });
            put(state, "accounts", account)?;
            let contact = json!({
                "firstname": FIRST_NAMES[n % FIRST_NAMES.len()],
                "lastname": LAST_NAMES[n % LAST_NAMES.len()],
                "fullname": format!("{} {}", FIRST_NAMES[n % FIRST_NAMES.len()], LAST_NAMES[n % LAST_NAMES.len()]),
                "msdyn_contactpersonid": format!("CE-CP{:03}", n + 1),
                "_msdyn_company_value": company,
            });
            put(state, "contacts", contact)?;
        }
    }
    Ok(())
}
