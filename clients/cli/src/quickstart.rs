//! `ferry quickstart`: the whole product-catalog pipeline on the embedded default, against a
//! real Ferry server started in this process on a free port, using the sample files that ship
//! with the project. Each step runs as the principal that would do it in production: the
//! catalog team publishes and grants, team A and team B read only their own views.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use ferry_proto::v1 as pb;
use ferry_server::Config;
use ferry_server::config::Secret;
use ferry_server::governance::{new_token, write_policy_dir};
use ferry_server::server::BoundServer;
use ferry_server::service::{Caller, TokenRequest, issue_token};

use crate::commands::{self, Client};
use crate::output::{self, Format};

const CONTRACT: &str = include_str!("../../../examples/product_catalog/contract.yaml");
const DAY_1: &str =
    include_str!("../../../examples/product_catalog/data/product_catalog_20210403.csv");
const DAY_2: &str =
    include_str!("../../../examples/product_catalog/data/product_catalog_20210404.csv");
const DAY_2_CORRECTED: &str =
    include_str!("../../../examples/product_catalog/data/product_catalog_20210404_corrected.csv");

const OWNER: &str = "team:catalog";
const TEAM_A_PRINCIPAL: &str = "team:a";
const TEAM_B_PRINCIPAL: &str = "team:b";

struct Teams {
    owner: Client,
    team_a: Client,
    team_b: Client,
    admin: Client,
}

const RAW: &str = "catalog.product_catalog";
const TEAM_A: &str = "catalog.with_image";
const TEAM_B: &str = "catalog.samsung_after_2000_without_image";

/// Row counts per day for the raw table and both team views.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counts {
    per_table: Vec<(String, [u64; 2])>,
}

pub async fn run(data_dir: Option<PathBuf>, out: &mut impl Write) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let data_dir = data_dir.unwrap_or_else(|| scratch.path().join("ferry-data"));
    let samples = scratch.path().join("samples");
    std::fs::create_dir_all(&samples)?;
    let contract = write(&samples, "contract.yaml", CONTRACT)?;
    let day1 = write(&samples, "product_catalog_20210403.csv", DAY_1)?;
    let day2 = write(&samples, "product_catalog_20210404.csv", DAY_2)?;
    let day2_fixed = write(
        &samples,
        "product_catalog_20210404_corrected.csv",
        DAY_2_CORRECTED,
    )?;
    let day2_broken = write(
        &samples,
        "product_catalog_20210404_broken.csv",
        &with_bad_currency(DAY_2_CORRECTED)?,
    )?;

    let admin_token = new_token();
    let mut config = Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: data_dir.clone(),
        ..Config::default()
    };
    config.auth.bootstrap_admin_token = Some(Secret::new(admin_token.clone()));
    // The extracts are the only local files this server may read, and only the catalog team's
    // publishes may read them: the policy line that binds the team to the directory.
    let samples = samples.canonicalize()?;
    config.sources.file_roots = vec![samples.clone()];
    let policy_dir = scratch.path().join("policies");
    write_policy_dir(
        &policy_dir,
        &[format!(
            "p, {OWNER}, source:file://{}/*, read_source, never",
            samples.display()
        )],
    )
    .context("writing the quickstart's policies")?;
    config.policy_dir = Some(policy_dir);
    let server = BoundServer::bind(&config)
        .await
        .context("starting the embedded Ferry server")?;
    let endpoint = format!("http://{}", server.local_addr);
    let mut tokens = Vec::new();
    for principal in [OWNER, TEAM_A_PRINCIPAL, TEAM_B_PRINCIPAL] {
        let issued = issue_token(
            server.ferry().registry(),
            TokenRequest {
                principal: principal.into(),
                description: "quickstart".into(),
                expires_at: None,
            },
            &Caller::system("quickstart"),
        )
        .await?;
        tokens.push(issued.secret);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    writeln!(
        out,
        "== Ferry quickstart: the product-catalog pipeline on the embedded default"
    )?;
    writeln!(out, "   server {endpoint}, data in {}", data_dir.display())?;

    writeln!(
        out,
        "   principals: {OWNER} (owner), {TEAM_A_PRINCIPAL}, {TEAM_B_PRINCIPAL}, admin:platform"
    )?;
    let mut teams = Teams {
        owner: commands::connect(&endpoint, Some(&tokens[0]), &Default::default()).await?,
        team_a: commands::connect(&endpoint, Some(&tokens[1]), &Default::default()).await?,
        team_b: commands::connect(&endpoint, Some(&tokens[2]), &Default::default()).await?,
        admin: commands::connect(&endpoint, Some(&admin_token), &Default::default()).await?,
    };
    let samples = Samples {
        contract,
        day1,
        day2,
        day2_fixed,
        day2_broken,
    };
    let result = pipeline(&mut teams, out, &samples).await;
    let _ = stop.send(());
    serving.await.context("server task")??;
    result
}

fn write(dir: &Path, name: &str, content: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// The contract and the extracts the quickstart publishes.
struct Samples {
    contract: PathBuf,
    day1: PathBuf,
    day2: PathBuf,
    day2_fixed: PathBuf,
    /// The corrected extract with a currency the contract's rule refuses.
    day2_broken: PathBuf,
}

async fn pipeline(
    teams: &mut Teams,
    out: &mut impl Write,
    samples: &Samples,
) -> anyhow::Result<()> {
    let Samples {
        contract,
        day1,
        day2,
        day2_fixed,
        day2_broken,
    } = samples;
    let client = &mut teams.owner;
    writeln!(
        out,
        "\n== 1. {OWNER} registers the dataset contract (raw table + team A and team B views)"
    )?;
    let registered = commands::register(client, contract).await?;
    commands::describe_registration(out, &registered)?;

    writeln!(
        out,
        "\n== 2. {OWNER} publishes two daily extracts, one day partition each"
    )?;
    for (date, file) in [("2021-04-03", day1), ("2021-04-04", day2)] {
        let result = commands::publish(client, RAW, date, &file_uri(file), "", false).await?;
        commands::describe_publish(out, &result)?;
    }
    let before = counts(client).await?;
    print_counts(out, &before)?;

    writeln!(out, "\n== 3. {OWNER} grants each team its own view")?;
    for (view, team, purpose) in [
        (
            TEAM_A,
            TEAM_A_PRINCIPAL,
            "merchandising: products with pictures",
        ),
        (TEAM_B, TEAM_B_PRINCIPAL, "assortment review: Samsung gaps"),
    ] {
        let grant = client
            .grant_access(pb::GrantAccessRequest {
                target: view.into(),
                grantee: team.into(),
                role: pb::Role::Reader.into(),
                purpose: purpose.into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        crate::admin::describe_grant(out, "granted", &grant)?;
    }

    writeln!(
        out,
        "\n== 4. What each principal sees (first rows, 2021-04-04)"
    )?;
    for (label, name, columns, reader) in [
        (
            "team:catalog reads the raw table",
            RAW,
            vec![
                "brand",
                "category_id",
                "currency",
                "image",
                "year_release",
                "partition_date",
            ],
            &mut teams.owner,
        ),
        (
            "team:a reads its view: products with an image",
            TEAM_A,
            vec!["brand", "category_id", "image", "year_release"],
            &mut teams.team_a,
        ),
        (
            "team:b reads its view: Samsung after 2000 without image",
            TEAM_B,
            vec!["brand", "category_id", "currency", "year_release"],
            &mut teams.team_b,
        ),
    ] {
        writeln!(out, "-- {label} ({name})")?;
        let rows = commands::read(
            reader,
            pb::ReadRowsRequest {
                name: name.into(),
                from_date: "2021-04-04".into(),
                to_date: "2021-04-04".into(),
                columns: columns.into_iter().map(String::from).collect(),
                limit: 5,
            },
        )
        .await?;
        output::render(out, Format::Table, &rows.schema, &rows.rows)?;
    }

    writeln!(out, "\n== 5. Anything else is denied")?;
    for (label, name, reader) in [
        ("team:a reads team B's view", TEAM_B, &mut teams.team_a),
        ("team:b reads the raw table", RAW, &mut teams.team_b),
    ] {
        let attempt = commands::read(
            reader,
            pb::ReadRowsRequest {
                name: name.into(),
                limit: 1,
                ..Default::default()
            },
        )
        .await;
        let status = attempt
            .err()
            .and_then(|e| e.downcast::<tonic::Status>().ok())
            .filter(|s| s.code() == tonic::Code::PermissionDenied)
            .with_context(|| format!("{label}: expected PERMISSION_DENIED"))?;
        writeln!(out, "{label}: PERMISSION_DENIED: {}", status.message())?;
    }

    let client = &mut teams.owner;
    writeln!(
        out,
        "\n== 6. Re-run 2021-04-04 with the same file: idempotent, nothing changes"
    )?;
    let rerun = commands::publish(client, RAW, "2021-04-04", &file_uri(day2), "", false).await?;
    commands::describe_publish(out, &rerun)?;
    let after_rerun = counts(client).await?;
    ensure!(
        rerun.unchanged && after_rerun == before,
        "re-publishing identical content changed the data"
    );
    writeln!(
        out,
        "counts after the re-run are identical: {}",
        summary(&after_rerun)
    )?;

    writeln!(
        out,
        "\n== 7. Publish a corrected file for 2021-04-04: that day is replaced, 2021-04-03 is untouched"
    )?;
    let fixed =
        commands::publish(client, RAW, "2021-04-04", &file_uri(day2_fixed), "", false).await?;
    commands::describe_publish(out, &fixed)?;
    let after_fix = counts(client).await?;
    print_counts(out, &after_fix)?;
    for ((table, old), (_, new)) in before.per_table.iter().zip(&after_fix.per_table) {
        ensure!(
            old[0] == new[0],
            "{table}: 2021-04-03 changed when only 2021-04-04 was republished"
        );
    }
    writeln!(
        out,
        "2021-04-03 is unchanged in every table; 2021-04-04 now holds the corrected extract."
    )?;

    writeln!(
        out,
        "\n== 8. A 2021-04-04 extract that breaks a quality rule is refused; the live day stays"
    )?;
    match commands::publish(client, RAW, "2021-04-04", &file_uri(day2_broken), "", false).await {
        Ok(_) => anyhow::bail!("an extract with a currency that is no ISO 4217 code was published"),
        Err(error) => {
            let status = error
                .chain()
                .find_map(|c| c.downcast_ref::<tonic::Status>())
                .filter(|s| crate::exit::reason(s).as_deref() == Some("QUALITY_RULE_FAILED"))
                .with_context(|| format!("expected QUALITY_RULE_FAILED, got {error:#}"))?;
            writeln!(out, "{}", crate::exit::describe(status))?;
        }
    }
    let after_refusal = counts(client).await?;
    ensure!(after_refusal == after_fix, "a refused day changed the data");
    writeln!(
        out,
        "counts are those of step 7: {}",
        summary(&after_refusal)
    )?;

    writeln!(out, "\n== 9. The ledger")?;
    let ledger = client
        .list_publications(pb::ListPublicationsRequest {
            dataset: RAW.into(),
            partition_date: String::new(),
            limit: 10,
        })
        .await?
        .into_inner();
    commands::print_publications(out, &ledger.publications)?;

    writeln!(
        out,
        "\n== 10. The audit log, as admin:platform sees it (latest 12)"
    )?;
    let events = teams
        .admin
        .list_audit_events(pb::ListAuditEventsRequest {
            limit: 12,
            ..Default::default()
        })
        .await?
        .into_inner()
        .events;
    crate::admin::print_audit(out, &events)?;
    writeln!(
        out,
        "\nDone. Run `ferry-server serve` and the `ferry` commands to do the same against a long-running server."
    )?;
    Ok(())
}

/// `extract` with the second row's currency written as `EURO`, which the contract's
/// `pattern: "^[A-Z]{3}$"` refuses.
fn with_bad_currency(extract: &str) -> anyhow::Result<String> {
    let mut reader = csv::Reader::from_reader(extract.as_bytes());
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(reader.headers()?)?;
    for (i, record) in reader.records().enumerate() {
        let mut fields: Vec<String> = record?.iter().map(str::to_owned).collect();
        if i == 1 {
            fields[3] = "EURO".into();
        }
        writer.write_record(&fields)?;
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}

async fn counts(client: &mut Client) -> anyhow::Result<Counts> {
    let mut per_table = Vec::new();
    for name in [RAW, TEAM_A, TEAM_B] {
        let mut day_counts = [0u64; 2];
        for (i, day) in ["2021-04-03", "2021-04-04"].iter().enumerate() {
            let rows = commands::read(
                client,
                pb::ReadRowsRequest {
                    name: name.into(),
                    from_date: (*day).into(),
                    to_date: (*day).into(),
                    columns: vec!["partition_date".into()],
                    limit: 0,
                },
            )
            .await?;
            day_counts[i] = rows.rows.len() as u64;
        }
        per_table.push((name.to_owned(), day_counts));
    }
    Ok(Counts { per_table })
}

fn summary(counts: &Counts) -> String {
    counts
        .per_table
        .iter()
        .map(|(t, c)| format!("{t} {}+{}", c[0], c[1]))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_counts(out: &mut impl Write, counts: &Counts) -> anyhow::Result<()> {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(["table", "2021-04-03", "2021-04-04"]);
    for (name, c) in &counts.per_table {
        table.add_row([name.clone(), c[0].to_string(), c[1].to_string()]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}
