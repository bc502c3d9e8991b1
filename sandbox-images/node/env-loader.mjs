// ESM ignores NODE_PATH: a repository's flat config (`import js from "@eslint/js"`) is resolved from
// the config's folder upwards only. When the repository's environment is mounted at /env, a bare
// specifier that does not resolve there is retried from /env/node_modules (its own packages).
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const bare = !/^(\.|\/|[a-z]+:)/.test(specifier);
    if (!bare) throw err;
    return nextResolve(specifier, { ...context, parentURL: "file:///env/resolve.mjs" });
  }
}
