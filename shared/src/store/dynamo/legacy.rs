//! Attribute names of the previous layout of the user state item (before issue 17), which
//! `meter migrate` rewrites (see `migrate`): every period's counters on the state item,
//! named `c|<period start, RFC 3339>|<field>|<provider>` with long field names, fired keys
//! `a|<RFC 3339>`, write counters `w|<RFC 3339>`, adjustments
//! `adj|<RFC 3339>|events|cost`, and open reservations `r|<reservation id>` with long map
//! keys (read by `items::reservation_of_map` in either form).

use chrono::{DateTime, SecondsFormat, Utc};

use super::layout::{AdjustmentPart, Field};

/// What an attribute of the previous layout is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    Counter(DateTime<Utc>, Field, Option<String>),
    Fired(DateTime<Utc>),
    Writes(DateTime<Utc>),
    Adjustment(DateTime<Utc>, AdjustmentPart),
}

/// The name of a period in the previous layout: RFC 3339, fractions only when present.
pub fn period_key(start: DateTime<Utc>) -> String {
    start.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_period(text: &str) -> Option<DateTime<Utc>> {
    // A period id of this layout is digits; the previous layout's is RFC 3339.
    if !text.contains('T') {
        return None;
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The field's name in the previous layout.
pub fn field_name(field: Field) -> &'static str {
    match field {
        Field::CallsUsed => "calls_used",
        Field::TokensUsed => "tokens_used",
        Field::CostUsed => "cost_used",
        Field::CallsHeld => "calls_held",
        Field::TokensHeld => "tokens_held",
        Field::CostHeld => "cost_held",
        Field::Unpriced => "unpriced",
        Field::Estimated => "estimated",
        Field::Errors => "errors",
        Field::LatencySum => "latency_sum",
        Field::LatencyCount => "latency_n",
    }
}

/// `c|<RFC 3339>|<field>|<provider or *>`.
pub fn counter(period: DateTime<Utc>, field: Field, provider: Option<&str>) -> String {
    format!(
        "c|{}|{}|{}",
        period_key(period),
        field_name(field),
        provider.unwrap_or("*")
    )
}

pub fn fired(period: DateTime<Utc>) -> String {
    format!("a|{}", period_key(period))
}

pub fn writes(period: DateTime<Utc>) -> String {
    format!("w|{}", period_key(period))
}

pub fn adjustment(period: DateTime<Utc>, part: AdjustmentPart) -> String {
    let part = match part {
        AdjustmentPart::Events => "events",
        AdjustmentPart::Cost => "cost",
    };
    format!("adj|{}|{part}", period_key(period))
}

/// The previous layout's meaning of an attribute name (`None` for names of this layout
/// and names both share).
pub fn parse(name: &str) -> Option<Attr> {
    if let Some(rest) = name.strip_prefix("c|") {
        let mut parts = rest.split('|');
        let period = parse_period(parts.next()?)?;
        let field_text = parts.next()?;
        let field = Field::ALL
            .into_iter()
            .find(|f| field_name(*f) == field_text)?;
        let provider = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let provider = (provider != "*").then(|| provider.to_owned());
        return Some(Attr::Counter(period, field, provider));
    }
    if let Some(rest) = name.strip_prefix("adj|") {
        let (period, part) = rest.rsplit_once('|')?;
        let part = match part {
            "events" => AdjustmentPart::Events,
            "cost" => AdjustmentPart::Cost,
            _ => return None,
        };
        return Some(Attr::Adjustment(parse_period(period)?, part));
    }
    if let Some(rest) = name.strip_prefix("a|") {
        return Some(Attr::Fired(parse_period(rest)?));
    }
    if let Some(rest) = name.strip_prefix("w|") {
        return Some(Attr::Writes(parse_period(rest)?));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dynamo::layout;
    use chrono::TimeZone;

    #[test]
    fn previous_names_parse_and_current_ones_do_not() {
        let p = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap();
        let odd = p + chrono::Duration::milliseconds(500);
        assert_eq!(
            counter(p, Field::LatencyCount, Some("gemini")),
            "c|2025-03-01T00:00:00Z|latency_n|gemini"
        );
        for f in Field::ALL {
            assert_eq!(
                parse(&counter(odd, f, Some("openai"))),
                Some(Attr::Counter(odd, f, Some("openai".into())))
            );
        }
        assert_eq!(
            parse(&counter(p, Field::CostUsed, None)),
            Some(Attr::Counter(p, Field::CostUsed, None))
        );
        assert_eq!(parse(&fired(p)), Some(Attr::Fired(p)));
        assert_eq!(parse(&writes(odd)), Some(Attr::Writes(odd)));
        assert_eq!(
            parse(&adjustment(p, AdjustmentPart::Cost)),
            Some(Attr::Adjustment(p, AdjustmentPart::Cost))
        );
        let gemini = crate::domain::ProviderId::parse("gemini").unwrap();
        for current in [
            layout::counter(p, Field::CallsUsed, Some(&gemini)),
            layout::fired(p),
            layout::writes(p),
            layout::adjustment(p, AdjustmentPart::Events),
            "adjv".to_owned(),
            "alerts_unread".to_owned(),
        ] {
            assert_eq!(parse(&current), None, "{current}");
        }
    }
}
