//! What validation reports: [`Problem`], with a stable [`ProblemCode`] and a
//! [`Severity`].

use std::fmt;

use serde::Serialize;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The config can run, but something needs a look (e.g. a secret that
    /// is not set on this machine).
    Warning,
    /// The config cannot run as written.
    Error,
}

macro_rules! problem_codes {
    ($($variant:ident = $code:literal $slug:literal $severity:ident, $doc:literal;)*) => {
        /// The stable code of a problem. Codes never change meaning; a
        /// retired code is not reused.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ProblemCode {
            $(#[doc = $doc] $variant,)*
        }

        impl ProblemCode {
            /// Every code, in order.
            pub const ALL: &[ProblemCode] = &[$(ProblemCode::$variant,)*];

            /// `DW001`.
            pub fn code(self) -> &'static str {
                match self { $(ProblemCode::$variant => $code,)* }
            }

            /// `unknown-system`.
            pub fn slug(self) -> &'static str {
                match self { $(ProblemCode::$variant => $slug,)* }
            }

            /// The severity this code is reported with.
            pub fn severity(self) -> Severity {
                match self { $(ProblemCode::$variant => Severity::$severity,)* }
            }
        }
    };
}

problem_codes! {
    ConfigSyntax = "DW000" "config-syntax" Error, "The file is not valid TOML or has an unknown or missing key.";
    UnknownSystem = "DW001" "unknown-system" Error, "A map names a system that `[systems]` does not define.";
    UnknownTable = "DW002" "unknown-table" Error, "The system's catalogue has no such table.";
    UnknownField = "DW003" "unknown-field" Error, "The table has no such field.";
    FieldSyntax = "DW004" "field-syntax" Error, "A `fields` or `key` string does not parse.";
    MissingKey = "DW005" "missing-key" Error, "A map has no integration key.";
    KeyIncomplete = "DW006" "key-incomplete" Error, "A field of the table's own key is not in the map's key.";
    KeyDirection = "DW007" "key-direction" Error, "The key flows one way while the map writes both ways, or a field repeats a key pair in another direction.";
    UnknownLookupMap = "DW008" "unknown-lookup-map" Error, "A lookup goes through a map that does not exist.";
    UnresolvedLookup = "DW009" "unresolved-lookup" Warning, "The catalogue does not say which table a lookup points at; name the map with `via`.";
    DependencyCycle = "DW010" "dependency-cycle" Error, "Maps depend on each other in a cycle.";
    UnknownDependency = "DW011" "unknown-dependency" Error, "`depends_on` names a map that does not exist.";
    DuplicateMap = "DW012" "duplicate-map" Error, "Two maps have the same name.";
    FilterSyntax = "DW013" "filter-syntax" Error, "A side's OData filter does not parse.";
    PluginMissing = "DW014" "plugin-missing" Error, "A plugin file cannot be read.";
    PluginRefused = "DW015" "plugin-refused" Error, "A plugin file is not a component the host accepts.";
    PluginExport = "DW016" "plugin-export" Error, "A plugin does not export what the map asks (`filter` or `transform`).";
    SecretUnset = "DW017" "secret-unset" Warning, "The environment variable that holds a system's secret is not set.";
    DuplicateTarget = "DW018" "duplicate-target" Error, "Two mappings write the same field in the same direction.";
    ValueMapNotReversible = "DW019" "value-map-not-reversible" Error, "A both-ways value map sends two values to one.";
    CompanyNotStriped = "DW020" "company-not-striped" Error, "`companies` is set but the left table has no company field.";
    MetadataUnreachable = "DW021" "metadata-unreachable" Warning, "`--live`: a system's metadata could not be read; its tables were checked against the built-in catalogue.";
    BatchSize = "DW022" "batch-size" Error, "`[engine] batch_size` is 0 or over 1,000, the most requests one `$batch` carries.";
    InsecureUrl = "DW023" "insecure-url" Error, "A system's `url` or `token_url` is `http://` to a host that is not loopback; use `https://`.";
    CaFile = "DW024" "ca-file" Error, "A system's `ca_file` cannot be read or holds no valid PEM certificate.";
    ServiceUnavailable = "DW025" "service-unavailable" Error, "`check`: a system does not answer, or does not answer as the service it should be.";
    TlsUnverified = "DW026" "tls-unverified" Error, "`check`: the TLS certificate of a system or its token endpoint does not verify.";
    NoToken = "DW027" "no-token" Error, "`check`: no token can be had for a system (no `auth`, the secret unset, or the token endpoint refused).";
    ChangeTrackingOff = "DW028" "change-tracking-off" Error, "`check`: change tracking is not enabled on a Dataverse table a map reads.";
    NoAlternateKey = "DW029" "no-alternate-key" Error, "`check`: a map's key is not an alternate key of the Dataverse table.";
    EntityNotPublic = "DW030" "entity-not-public" Error, "`check`: a finops data entity is not in the service's `$metadata` (not public, or no such entity).";
    MissingPrivilege = "DW031" "missing-privilege" Error, "`check`: the identity may not read or write a table the map needs.";
    PrivilegeDepth = "DW032" "privilege-depth" Warning, "`check`: the identity holds a privilege below organization depth, so it sees or changes only some rows.";
    Concurrency = "DW033" "concurrency" Error, "`[engine] batches_in_flight` or a system's `max_concurrency` is 0 or over its limit.";
    AuthConfig = "DW034" "auth-config" Error, "A system's `auth` names no token endpoint (`tenant` or `token_url`), a tenant that is not a directory, or not exactly one of `client_secret_env` and `certificate_file`.";
    ClientCertificate = "DW035" "client-certificate" Error, "A system's `certificate_file` or `private_key_file` cannot be read, is not an RSA certificate and key in PEM, is outside its validity, or the key is not the certificate's.";
    ReceiverTls = "DW036" "receiver-tls" Error, "`[engine] tls_certificate_file` or `tls_private_key_file` cannot be read or holds no PEM certificate chain or private key, or the key is set without the certificate.";
    PollingBudget = "DW037" "polling-budget" Error, "`[engine] polling_share` is not above 0 and at most 1, or a system's `request_limit` is 0.";
    PublicUrl = "DW038" "public-url" Error, "`[engine] public_url` is not an absolute URL, is `http://` to a host that is not loopback, or carries a query or fragment.";
    QueueLimit = "DW039" "queue-limit" Error, "`[engine.queue] max_changes` or `max_age` is 0, so no change could be queued.";
    InitialSync = "DW040" "initial-sync" Error, "A map's `initial_sync` is not `left`, `right` or `none`, or names as the master a side whose changes the map never reads.";
    LogRetention = "DW041" "log-retention" Error, "`[engine.log] max_age` or `max_size` is 0, so the activity log would keep no line.";
    AlertRule = "DW042" "alert-rule" Error, "An alert rule of `[[alerts.rules]]` names an unknown condition, map, system, class or action, lacks a field its condition needs or has one it does not read, or `[alerts]` sets an interval of 0.";
    AlertWebhook = "DW043" "alert-webhook" Error, "An alert webhook of `[[alerts.webhooks]]` has a URL that is not `https://` (or `http://` to loopback), a secret unset or not `whsec_` and a base64 key, an unreadable `ca_file`, or names a rule the config lacks.";
    PluginReference = "DW044" "plugin-reference" Error, "A plugin step names both or neither of `path` and `plugin`, a `plugin` that is not `name`, `name@version` or `name@requirement`, one no version in the host's registry meets, or the registry cannot be read.";
    LiveMode = "DW045" "live-mode" Error, "A map's `mode` is not `async` or `live`, its `live_fallback` is not `fail` or `queue` or is set on a map that is not live, or a live map has no Dataverse side flowing into finops, or no way for Dataverse to call the host (`[engine] listen`, `public_url` and the Dataverse system's `events_secret_env`).";
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.slug())
    }
}

impl Serialize for ProblemCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

/// One thing wrong with a config, with where it is and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The stable code.
    pub code: ProblemCode,
    /// `unknown-system`, the code's name.
    pub slug: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// The config file.
    pub file: String,
    /// The system at fault, if any (`[systems.NAME]`).
    pub system: Option<String>,
    /// The map at fault, if any.
    pub map: Option<String>,
    /// The table or entity at fault, if any.
    pub table: Option<String>,
    /// The field, key string or setting at fault, if any.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

impl Problem {
    /// A problem with the code's own severity.
    pub fn new(code: ProblemCode, message: impl Into<String>, help: impl Into<String>) -> Self {
        Problem {
            code,
            slug: code.slug(),
            severity: code.severity(),
            file: String::new(),
            system: None,
            map: None,
            table: None,
            field: None,
            message: message.into(),
            help: help.into(),
        }
    }

    /// Names the map at fault.
    pub fn in_map(mut self, map: &str) -> Self {
        self.map = Some(map.to_string());
        self
    }

    /// Names the system at fault.
    pub fn on_system(mut self, system: &str) -> Self {
        self.system = Some(system.to_string());
        self
    }

    /// Names the table or entity at fault.
    pub fn in_table(mut self, table: &str) -> Self {
        self.table = Some(table.to_string());
        self
    }

    /// Names the field or setting at fault.
    pub fn at_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Whether it stops the config from running.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(
            f,
            "{severity}[{} {}] {}",
            self.code.code(),
            self.slug,
            self.file
        )?;
        if let Some(map) = &self.map {
            write!(f, ": map `{map}`")?;
        }
        if let Some(system) = &self.system {
            write!(f, ", system `{system}`")?;
        }
        if let Some(table) = &self.table {
            write!(f, ", table `{table}`")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", `{field}`")?;
        }
        write!(f, ": {}", self.message)?;
        if !self.help.is_empty() {
            write!(f, "\n  help: {}", self.help)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_numbered_in_order() {
        for (index, code) in ProblemCode::ALL.iter().enumerate() {
            assert_eq!(code.code(), format!("DW{index:03}"), "{code:?}");
        }
        let mut slugs: Vec<_> = ProblemCode::ALL.iter().map(|code| code.slug()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), ProblemCode::ALL.len());
    }

    #[test]
    fn display_names_code_map_field_and_help() {
        let mut problem = Problem::new(ProblemCode::UnknownSystem, "no system `crm`", "define it")
            .in_map("customers")
            .at_field("right.system");
        problem.file = "maps.toml".into();
        assert_eq!(
            problem.to_string(),
            "error[DW001 unknown-system] maps.toml: map `customers`, `right.system`: no system `crm`\n  help: define it"
        );
        let problem = Problem::new(ProblemCode::ChangeTrackingOff, "off", "turn it on")
            .in_map("customers")
            .on_system("dataverse")
            .in_table("accounts");
        assert_eq!(
            problem.to_string(),
            "error[DW028 change-tracking-off] : map `customers`, system `dataverse`, table `accounts`: off\n  help: turn it on"
        );
    }
}
