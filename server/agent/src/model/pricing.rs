//! What a response cost, estimated from its token usage and public list
//! prices, for the usage events the user sees.
//!
//! Input tokens, cache writes and cache reads are priced separately:
//! a cache write costs 1.25× the input price (5-minute cache), a cache read
//! 0.1×. Models without a known price (local models, new releases) have no
//! estimate rather than a wrong one.

use super::Usage;

/// List prices in US dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

const CACHE_WRITE_FACTOR: f64 = 1.25;
const CACHE_READ_FACTOR: f64 = 0.1;

/// The price of `model`, also for dated ids such as `claude-haiku-4-5-20251001`.
pub fn price(model: &str) -> Option<Price> {
    const PRICES: [(&str, Price); 3] = [
        (
            "claude-sonnet-4-6",
            Price {
                input_per_mtok: 3.0,
                output_per_mtok: 15.0,
            },
        ),
        (
            "claude-opus-4-6",
            Price {
                input_per_mtok: 5.0,
                output_per_mtok: 25.0,
            },
        ),
        (
            "claude-haiku-4-5",
            Price {
                input_per_mtok: 1.0,
                output_per_mtok: 5.0,
            },
        ),
    ];
    PRICES.iter().find_map(|(id, price)| {
        let suffix = model.strip_prefix(id)?;
        // Only an exact id or a `-date` suffix: `claude-sonnet-4-60` is
        // another model.
        (suffix.is_empty() || suffix.starts_with('-')).then_some(*price)
    })
}

/// The estimated cost of `usage` on `model` in US dollars, or `None` for a
/// model without a known price.
pub fn estimate_cost_usd(model: &str, usage: &Usage) -> Option<f64> {
    let price = price(model)?;
    let input = price.input_per_mtok;
    let micro_dollars = usage.input_tokens as f64 * input
        + usage.cache_creation_input_tokens as f64 * input * CACHE_WRITE_FACTOR
        + usage.cache_read_input_tokens as f64 * input * CACHE_READ_FACTOR
        + usage.output_tokens as f64 * price.output_per_mtok;
    Some(micro_dollars / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(model: &str, usage: [u64; 4], expect: Option<&str>) {
        let [
            input_tokens,
            output_tokens,
            cache_creation_input_tokens,
            cache_read_input_tokens,
        ] = usage;
        let usage = Usage {
            input_tokens,
            output_tokens,
            cache_read_input_tokens,
            cache_creation_input_tokens,
        };
        let got = estimate_cost_usd(model, &usage).map(|cost| format!("{cost:.6}"));
        assert_eq!(got.as_deref(), expect, "{model} {usage:?}");
    }

    #[test]
    fn costs() {
        // [input, output, cache write, cache read]
        check("claude-sonnet-4-6", [1_000_000, 0, 0, 0], Some("3.000000"));
        check("claude-sonnet-4-6", [0, 1_000_000, 0, 0], Some("15.000000"));
        check("claude-sonnet-4-6", [0, 0, 1_000_000, 0], Some("3.750000"));
        check("claude-sonnet-4-6", [0, 0, 0, 1_000_000], Some("0.300000"));
        check(
            "claude-opus-4-6",
            [1_000_000, 1_000_000, 0, 0],
            Some("30.000000"),
        );
        check(
            "claude-opus-4-6",
            [0, 0, 1_000_000, 1_000_000],
            Some("6.750000"),
        );
        check("claude-haiku-4-5", [2_000, 500, 0, 0], Some("0.004500"));
        check(
            "claude-haiku-4-5-20251001",
            [1_000_000, 0, 0, 0],
            Some("1.000000"),
        );
        check("claude-sonnet-4-6", [0, 0, 0, 0], Some("0.000000"));
        check("claude-sonnet-4-60", [1, 1, 1, 1], None);
        check("llama3.1:8b", [1, 1, 1, 1], None);
        check("", [1, 1, 1, 1], None);
    }
}
