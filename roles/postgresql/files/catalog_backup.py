#!/usr/bin/python3
"""Backups of the catalog database to the object storage, and their restore.

    catalog_backup.py CONFIG backup            dump every database, upload, keep the newest N
    catalog_backup.py CONFIG list              the complete backups, oldest first
    catalog_backup.py CONFIG restore NAME      restore a backup (or `latest`) into empty databases

CONFIG (backup.json, written by the postgresql role) names the databases, the server, the bucket
and the files holding the credentials; the programs are PostgreSQL's own (pg_dump, pg_restore,
psql) and MinIO's client (mc). The same script runs from a metal host's timer and from a
cluster's CronJob.

A backup is a folder <prefix>/<UTC time>/ of one custom-format dump per database, then its
manifest.json (each dump's size and sha256), written last: a folder without a manifest is an
unfinished backup, which `list`, `restore` and the pruning ignore.

A restore fills only databases that hold no table yet (a new host's, just created by the role):
a database with tables is left as it is and reported, so a restore never overwrites live data;
a database whose backup held no table has nothing to restore.
Each database is restored in one transaction as the superuser (on a metal host's socket, or from
a cluster's Job over TLS), owners kept (the role has created them). Prints one JSON object;
exits non-zero with the reason on any failure.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote, urlsplit

ALIAS = "lakehouse"
MANIFEST = "manifest.json"
COMMAND_SECONDS = 3600  # a dump, an upload or a restore of one database
# Tables and their like, outside PostgreSQL's own schemas: what makes a database not empty.
USER_RELATIONS = (
    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')"
    " AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
)


class Failure(Exception):
    """A step that failed, with what the program said."""


def run(argv: list[str], env: dict | None = None, output: bool = False) -> str:
    done = subprocess.run(
        argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=COMMAND_SECONDS, check=False
    )
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise Failure(f"{Path(argv[0]).name} {argv[1]} failed ({done.returncode}): {' '.join(said)}")
    return done.stdout if output else ""


class Backups:
    def __init__(self, config: dict, work: Path):
        self.config, self.work = config, work
        secrets = json.loads(Path(config["credentials_file"]).read_text())
        self.db_password = secrets["db_password"]
        # mc takes the endpoint and keys from MC_HOST_<alias> and trusts the CAs in its config dir.
        url = urlsplit(config["s3"]["url"])
        keys = f"{quote(secrets['s3_access_key'], safe='')}:{quote(secrets['s3_secret_key'], safe='')}"
        self.mc_env = {"MC_HOST_" + ALIAS: f"{url.scheme}://{keys}@{url.netloc}"}
        cas = work / "mc" / "certs" / "CAs"
        cas.mkdir(parents=True)
        shutil.copy(config["ca_file"], cas / "lakehouse-ca.crt")
        self.folder = f"{ALIAS}/{config['s3']['bucket']}/{config['s3']['prefix']}"

    def mc(self, *argv: str, output: bool = False) -> str:
        return run([self.config["mc"], "--config-dir", str(self.work / "mc"), "--quiet", "--json", *argv],
                   env=self.mc_env, output=output)  # fmt: skip

    def pg(self, program: str, *argv: str, admin: bool = False, output: bool = False) -> str:
        """A PostgreSQL client program: as the backup role over TLS; or (admin) as the superuser,
        on a metal host's socket by peer authentication, from a cluster's pod over TLS."""
        server, how = self.config["server"], self.config["admin"]
        if admin and "socket_dir" in how:
            conninfo, env = [f"--host={how['socket_dir']}", f"--port={server['port']}", "--username=postgres"], {}
        else:
            user, password = (
                ("postgres", Path(how["password_file"]).read_text().strip())
                if admin
                else (server["user"], self.db_password)
            )
            conninfo = [f"--host={server['name']}", f"--port={server['port']}", f"--username={user}"]
            env = {"PGPASSWORD": password, "PGSSLMODE": "verify-full", "PGSSLROOTCERT": self.config["ca_file"]}
        return run([f"{self.config['bin_dir']}/{program}", *conninfo, "--no-password", *argv], env=env, output=output)

    def query(self, database: str, sql: str, admin: bool = True) -> str:
        """One query's plain output."""
        argv = [f"--dbname={database}", "--tuples-only", "--no-align", f"--command={sql}"]
        return self.pg("psql", *argv, admin=admin, output=True).strip()

    def complete(self) -> list[str]:
        """The names of the finished backups, oldest first (their names sort by time)."""
        listed = self.mc("ls", "--recursive", f"{self.folder}/", output=True)
        keys = [json.loads(line).get("key", "") for line in listed.splitlines() if line.strip()]
        return sorted(key.split("/")[0] for key in keys if key.endswith(f"/{MANIFEST}") and key.count("/") == 1)

    def backup(self) -> dict:
        name = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        manifest = {"name": name, "databases": {}}
        for database in self.config["databases"]:
            dump = self.work / f"{database}.dump"
            self.pg("pg_dump", "--format=custom", f"--file={dump}", f"--dbname={database}")
            manifest["databases"][database] = {
                "file": dump.name,
                "relations": int(self.query(database, USER_RELATIONS, admin=False)),
                "bytes": dump.stat().st_size,
                "sha256": hashlib.sha256(dump.read_bytes()).hexdigest(),
            }
            self.mc("cp", str(dump), f"{self.folder}/{name}/{dump.name}")
        (self.work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        self.mc("cp", str(self.work / MANIFEST), f"{self.folder}/{name}/{MANIFEST}")
        pruned = self.complete()[: -int(self.config["keep"])]
        for old in pruned:
            self.mc("rm", "--recursive", "--force", f"{self.folder}/{old}/")
        return {"backup": name, "databases": manifest["databases"], "pruned": pruned}

    def restore(self, wanted: str) -> dict:
        found = self.complete()
        if not found:
            raise Failure(f"no complete backup under {self.folder}/")
        name = found[-1] if wanted == "latest" else wanted
        if name not in found:
            raise Failure(f"no complete backup {name} under {self.folder}/ (have: {', '.join(found)})")
        self.mc("cp", f"{self.folder}/{name}/{MANIFEST}", str(self.work / MANIFEST))
        manifest = json.loads((self.work / MANIFEST).read_text())
        existing = self.query("postgres", "SELECT datname FROM pg_database").split()
        missing = sorted(set(manifest["databases"]) - set(existing))
        if missing:
            raise Failure(f"backup {name} holds databases this server does not declare: {', '.join(missing)}")
        restored, kept, empty = [], [], []
        for database, entry in sorted(manifest["databases"].items()):
            if entry["relations"] == 0:
                empty.append(database)
                continue
            if int(self.query(database, USER_RELATIONS)) > 0:
                kept.append(database)
                continue
            dump = self.work / entry["file"]
            self.mc("cp", f"{self.folder}/{name}/{entry['file']}", str(dump))
            if hashlib.sha256(dump.read_bytes()).hexdigest() != entry["sha256"]:
                raise Failure(f"{name}/{entry['file']} does not match the sha256 of its manifest")
            self.pg("pg_restore", f"--dbname={database}", "--single-transaction", "--exit-on-error", str(dump),
                    admin=True)  # fmt: skip
            restored.append(database)
        return {"backup": name, "restored": restored, "kept": kept, "empty": empty}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("backup", "list", "restore") or (argv[1] == "restore") != (len(argv) == 3):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    config = json.loads(Path(argv[0]).read_text())
    with tempfile.TemporaryDirectory(prefix="catalog-backup-") as work:
        backups = Backups(config, Path(work))
        try:
            if argv[1] == "backup":
                result = backups.backup()
            elif argv[1] == "list":
                result = {"backups": backups.complete()}
            else:
                result = backups.restore(argv[2])
        except (Failure, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as error:
            print(json.dumps({"failed": str(error)}), file=sys.stderr)
            return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
