-- Where each installed version came from ({"kind", "ref", "commit"}: npm name@version, git URL
-- and the commit installed, upload, local path). The package signature, when there is one, is in
-- plugin_versions.signature_json (0001) with the digests it covers, so boot can re-check it
-- against the trust policy in force.
ALTER TABLE plugin_versions ADD COLUMN source_json TEXT;
