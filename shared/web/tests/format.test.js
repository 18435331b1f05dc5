// Unit tests of shared/web/format.js: `node --test shared/web/tests/` (scripts/test-web).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const f = require("../format.js");

// Intl puts a no-break space (U+00A0) or a narrow one (U+202F) in some patterns.
const plain = (s) => s.replace(/[\u00a0\u202f]/g, " ");

test("money keeps every digit and groups the integer part", () => {
  assert.equal(f.money("1234567.0008125", "en-US"), "$1,234,567.0008125");
  assert.equal(f.money("0.0008125", "en-US"), "$0.0008125");
  assert.equal(f.money("12", "en-US"), "$12.00");
  assert.equal(f.money("0.5", "en-US"), "$0.50");
  assert.equal(f.money("-3.1", "en-US"), "-$3.10");
  assert.equal(f.money("-0.00", "en-US"), "$0.00", "negative zero shows no sign");
  // Beyond 2^53 and beyond double precision: still exact.
  assert.equal(
    f.money("98765432109876543210.123456789012345678", "en-US"),
    "$98,765,432,109,876,543,210.123456789012345678",
  );
});

test("money follows the locale's separators and currency pattern", () => {
  // Where a float is exact (these values), Intl's own output is the reference: the
  // exact formatting must be identical to it in every locale, signs and symbols included.
  const locales = ["en-US", "de-DE", "fr-FR", "de-CH", "en-IN", "ja-JP", "ar-EG", "hi-IN", "pt-BR"];
  for (const locale of locales) {
    for (const value of ["1234567.5", "-1234.25", "0.5", "1000000", "-0.75"]) {
      const reference = new Intl.NumberFormat(locale, { style: "currency", currency: "USD" })
        .format(Number(value));
      assert.equal(f.money(value, locale), reference, `${locale} ${value}`);
    }
  }
  // Where it is not, the digits survive in the locale's pattern.
  assert.equal(plain(f.money("1234567.0008125", "de-DE")), "1.234.567,0008125 $");
});

test("decimals and counts are grouped without losing digits", () => {
  assert.equal(f.decimal("1234.000100", "en-US"), "1,234.000100");
  assert.equal(f.decimal("-7", "en-US"), "-7");
  assert.equal(plain(f.decimal("1234.5", "de-DE")), "1.234,5");
  assert.equal(f.count(1234567, "en-US"), "1,234,567");
  assert.equal(f.count("1234567", "en-US"), "1,234,567");
  assert.equal(f.percent(93.57, "en-US"), "93.57%");
  assert.equal(f.percent(100, "en-US"), "100%");
  assert.equal(plain(f.percent(80.5, "de-DE")), "80,5 %");
});

test("sums and comparisons are exact where floats are not", () => {
  assert.equal(0.1 + 0.2 === 0.3, false, "the float trap this avoids");
  assert.equal(f.add("0.1", "0.2"), "0.3");
  assert.equal(f.add("0.0008125", "1.9991875"), "2");
  assert.equal(f.add("-5", "1.25"), "-3.75");
  assert.equal(f.add("0", "0"), "0");
  assert.equal(f.add("9007199254740993", "0.000000001"), "9007199254740993.000000001");
  assert.equal(f.compare("0.30", "0.3"), 0);
  assert.equal(f.compare("0.0008125", "0.0008124999"), 1);
  assert.equal(f.compare("-1", "0"), -1);
  assert.equal(f.compare("9007199254740993", "9007199254740992"), 1);
});

test("rounding is half away from zero on the digits", () => {
  assert.equal(f.round("0.03914901329097625080844756", 2), "0.04");
  assert.equal(f.round("2.675", 2), "2.68", "2.675 is 2.67499… as a float");
  assert.equal(f.round("-2.675", 2), "-2.68");
  assert.equal(f.round("0.004", 2), "0.00");
  assert.equal(f.round("-0.004", 2), "0.00", "no negative zero");
  assert.equal(f.round("9.995", 2), "10.00");
  assert.equal(f.round("1.5", 2), "1.5", "never adds digits");
  assert.equal(f.round("12.5", 0), "13");
});

test("anything but an exact decimal string is refused", () => {
  for (const bad of ["", "1e5", "1.", ".5", "NaN", "12,5", "0x10", "1.2.3"]) {
    assert.throws(() => f.money(bad, "en-US"), /not an exact decimal/, bad);
  }
});
