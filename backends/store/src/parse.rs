//! Value parsers for settings: each trims the value and says, in its error, what it accepts,
//! so `walab serve` can print one line naming the variable and the choices.

use std::ffi::OsStr;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::{Arg, Command};

/// A value parser that trims the value, parses it with `parse` (whose error says what is
/// accepted) and names `values` as the allowed ones in help and completions. clap's own
/// possible-values parser would refuse `interval:250`, and word its errors itself.
#[derive(Clone)]
pub struct Choices<P> {
    values: Vec<&'static str>,
    parse: P,
}

impl<P> std::fmt::Debug for Choices<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Choices")
            .field("values", &self.values)
            .finish()
    }
}

/// See [`Choices`].
pub fn choices<T, P>(
    values: Vec<&'static str>,
    parse: P,
) -> Choices<impl TypedValueParser<Value = T>>
where
    T: Clone + Send + Sync + 'static,
    P: Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static,
{
    Choices {
        values,
        parse: move |v: &str| parse(v.trim()),
    }
}

impl<P: TypedValueParser> TypedValueParser for Choices<P> {
    type Value = P::Value;

    fn parse_ref(
        &self,
        cmd: &Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<Self::Value, clap::Error> {
        self.parse.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            self.values.iter().copied().map(PossibleValue::new),
        ))
    }
}

/// A whole number; the error says it expected `what`.
pub fn whole(what: &'static str) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync {
    move |v| {
        v.trim()
            .parse()
            .map_err(|_| format!("expected {what}, got '{v}'"))
    }
}

/// A whole number of `unit` of at least `min`.
pub fn at_least(
    min: u64,
    unit: &'static str,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync {
    move |v| match v.trim().parse::<u64>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!(
            "expected a number of {unit} of at least {min}, got '{v}'"
        )),
    }
}

/// Text, trimmed.
pub fn text(v: &str) -> Result<String, String> {
    Ok(v.trim().to_owned())
}
