def test_probe(api, job):
    for g in ["**", "*", "*.sample", "**/*.sample", "hooks/*", ".git/hooks/*", "**/hooks/**", "{.git,src}/**", ".git/*", "!src"]:
        r = api.tool(job["id"], "search", pattern="refs/heads", fixed_string=True, glob=g)
        print("\n##", repr(g), r.status_code, sorted({m["path"] for m in r.json().get("matches", [])})[:4])
