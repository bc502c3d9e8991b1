// eslint's JSON formatter without what a verdict does not need: no embedded `source` of each file
// with findings (a real repository tripped the output cap with it), no fixes or suggestions.
// Works as `--format /opt/eslint/json-lean.cjs` for eslint 8 and 9 and as xo's `--reporter`.
"use strict";
module.exports = function (results) {
  return JSON.stringify(
    results.map((r) => ({
      filePath: r.filePath,
      messages: r.messages.map((m) => ({
        ruleId: m.ruleId,
        severity: m.severity,
        fatal: m.fatal,
        message: m.message,
        line: m.line,
        column: m.column,
      })),
    })),
  );
};
