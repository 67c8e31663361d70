"""The workspace store (schema, migrations, queries) and face-set curation."""
