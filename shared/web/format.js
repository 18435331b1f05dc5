/* meter web dashboard: numbers in the reader's locale, money kept exact.
 *
 * The API sends money as exact decimal strings ("1234.0008125"). They are never turned
 * into floating-point numbers for display or arithmetic: a string is split into its
 * integer and fraction digits; the integer part is grouped by Intl.NumberFormat from a
 * BigInt (exact at any size), the fraction digits are kept as they are (rendered in the
 * locale's digits), and the locale's decimal separator, minus sign and currency pattern
 * come from Intl's formatToParts of a sample value. Sums and comparisons use BigInt on
 * the digits scaled to a common number of decimals. (Only the chart turns amounts into
 * Numbers, to place points; its legend shows the exact strings.)
 *
 * Loaded as a classic script: defines `MeterFormat` on the page, `module.exports` in node
 * (the unit tests in shared/web/tests).
 */
(function (root) {
  "use strict";

  var DECIMAL = /^(-)?(\d+)(?:\.(\d+))?$/;

  /** {negative, integer, fraction} digits of an exact decimal string; throws otherwise. */
  function parts(text) {
    var m = DECIMAL.exec(String(text).trim());
    if (!m) {
      throw new Error("not an exact decimal: " + text);
    }
    var integer = m[2].replace(/^0+(?=\d)/, "");
    var fraction = m[3] || "";
    var zero = /^0+$/.test(integer) && /^0*$/.test(fraction);
    return { negative: !!m[1] && !zero, integer: integer, fraction: fraction };
  }

  var cache = {};
  function nf(locale, options) {
    var key = locale + JSON.stringify(options || {});
    if (!cache[key]) {
      cache[key] = new Intl.NumberFormat(locale, options);
    }
    return cache[key];
  }

  function partOf(locale, options, value, type, fallback) {
    var found = nf(locale, options)
      .formatToParts(value)
      .filter(function (p) { return p.type === type; })[0];
    return found ? found.value : fallback;
  }

  /** The digits of `digits` (a string of 0-9) in the locale's numbering system. */
  function localDigits(digits, locale) {
    var out = "";
    for (var i = 0; i < digits.length; i += 21) {
      var chunk = digits.slice(i, i + 21);
      out += nf(locale, { useGrouping: false, minimumIntegerDigits: chunk.length })
        .format(BigInt(chunk));
    }
    return out;
  }

  /** The number without sign: grouped integer, decimal separator, fraction digits. */
  function unsigned(p, locale, minFraction) {
    var fraction = p.fraction;
    while (fraction.length < minFraction) {
      fraction += "0";
    }
    var integer = nf(locale, { maximumFractionDigits: 0 }).format(BigInt(p.integer));
    if (!fraction) {
      return integer;
    }
    return integer + partOf(locale, {}, 1.5, "decimal", ".") + localDigits(fraction, locale);
  }

  /** An exact decimal string in the locale, every digit kept ("1234.5" → "1,234.5"). */
  function decimal(text, locale) {
    var p = parts(text);
    var sign = p.negative ? partOf(locale, {}, -1, "minusSign", "-") : "";
    return sign + unsigned(p, locale, 0);
  }

  /** An exact amount of money in the locale's currency pattern, at least two decimals,
   *  never rounded ("0.0008125" → "$0.0008125", "12" → "$12.00"). */
  function money(text, locale, currency) {
    var p = parts(text);
    var number = unsigned(p, locale, 2);
    var template = nf(locale, { style: "currency", currency: currency || "USD" })
      .formatToParts(p.negative ? -1 : 1);
    var out = "";
    var placed = false;
    template.forEach(function (part) {
      if (part.type === "integer" || part.type === "group" ||
          part.type === "decimal" || part.type === "fraction") {
        if (!placed) {
          out += number;
          placed = true;
        }
      } else {
        out += part.value;
      }
    });
    return out;
  }

  /** A count (a JSON integer from the API) with the locale's grouping. */
  function count(n, locale) {
    if (typeof n === "string") {
      return decimal(n, locale);
    }
    return nf(locale, { maximumFractionDigits: 0 }).format(n);
  }

  /** A percentage the API gave with two decimals (93.57 → "93.57%"). */
  function percent(n, locale) {
    return nf(locale, { style: "percent", maximumFractionDigits: 2 }).format(n / 100);
  }

  /** [BigInt a, BigInt b] scaled to the same number of decimals. */
  function scaled(a, b) {
    var pa = parts(a);
    var pb = parts(b);
    var scale = Math.max(pa.fraction.length, pb.fraction.length);
    function big(p) {
      var digits = p.integer + p.fraction + "0".repeat(scale - p.fraction.length);
      var v = BigInt(digits);
      return p.negative ? -v : v;
    }
    return { a: big(pa), b: big(pb), scale: scale };
  }

  /** -1, 0 or 1: exact comparison of two decimal strings. */
  function compare(a, b) {
    var s = scaled(a, b);
    return s.a < s.b ? -1 : s.a > s.b ? 1 : 0;
  }

  /** The exact sum of two decimal strings, as a decimal string without trailing zeros. */
  function add(a, b) {
    var s = scaled(a, b);
    var sum = s.a + s.b;
    var negative = sum < 0n;
    var digits = (negative ? -sum : sum).toString();
    if (s.scale === 0) {
      return (negative ? "-" : "") + digits;
    }
    digits = digits.padStart(s.scale + 1, "0");
    var integer = digits.slice(0, digits.length - s.scale);
    var fraction = digits.slice(digits.length - s.scale).replace(/0+$/, "");
    return (negative ? "-" : "") + integer + (fraction ? "." + fraction : "");
  }

  /** An exact decimal string rounded to `dp` decimals, half away from zero (the rule
   *  of invoices), computed on the digits: round("0.0391490", 2) → "0.04". */
  function round(text, dp) {
    var p = parts(text);
    if (p.fraction.length <= dp) {
      return (p.negative ? "-" : "") + p.integer + (p.fraction ? "." + p.fraction : "");
    }
    var kept = BigInt(p.integer + p.fraction.slice(0, dp));
    if (Number(p.fraction.charAt(dp)) >= 5) {
      kept += 1n;
    }
    var digits = kept.toString().padStart(dp + 1, "0");
    var integer = dp ? digits.slice(0, digits.length - dp) : digits;
    var fraction = dp ? digits.slice(digits.length - dp) : "";
    var zero = /^0*$/.test(integer + fraction);
    return (p.negative && !zero ? "-" : "") + integer + (fraction ? "." + fraction : "");
  }

  var api = {
    parts: parts,
    decimal: decimal,
    money: money,
    count: count,
    percent: percent,
    compare: compare,
    add: add,
    round: round,
  };
  if (typeof module !== "undefined" && module.exports) {
    module.exports = api;
  } else {
    root.MeterFormat = api;
  }
})(this);
