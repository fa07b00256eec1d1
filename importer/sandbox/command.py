"""``tagmango-import sandbox``: the sandbox's options, turned into a ``SandboxConfig`` (registered by
``importer.cli``). Tokens come from ``--token`` (shows in ``ps``), ``--token-file`` or ``TAGMANGO_SANDBOX_TOKENS``."""

from __future__ import annotations

import sys

import click

from importer.exitcodes import EXIT_CONFIG, CommandError


def _rate(value: str) -> float:
    rate = float(value)
    if not 0 <= rate <= 1:
        raise click.BadParameter("a rate is between 0 and 1")
    return rate


@click.command("sandbox")
@click.option("--host", "bind", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port (0 picks a free one).")
@click.option("--token", "tokens", multiple=True, metavar="TOKEN[=HOST]",
              help="Accepted bearer token; TOKEN=HOST ties it to one whitelabel host. Repeatable. Shows in ps: "
                   "prefer --token-file or TAGMANGO_SANDBOX_TOKENS.")
@click.option("--token-file", default=None, type=click.Path(dir_okay=False), metavar="PATH",
              help="Accepted tokens, one TOKEN[=HOST] per line (# comments); chmod 600. Used when no --token.")
@click.option("--not-creator", multiple=True, metavar="HOST", help="Host whose Create Course answers 403.")
@click.option("--video-disabled", multiple=True, metavar="HOST", help="Host that may not upload video.")
@click.option("--mango", "mangoes", multiple=True, metavar="ID", help="Extra known mango id (defaults stay).")
@click.option("--cdn-prefix", default=None, help="URL prefix of uploaded assets.")
@click.option("--strict-assets", is_flag=True, help="Content URLs must also be registered assets.")
@click.option("--asset", "assets", multiple=True, metavar="URL", help="Register an uploaded asset.")
@click.option("--envelope", type=click.Choice(["bare", "result", "data"]), default="bare", show_default=True)
@click.option("--rate-limit", default=120, show_default=True, type=int, help="Requests per 10 s per token.")
@click.option("--latency", default="0-0", show_default=True, metavar="MIN-MAX",
              help="Added latency in milliseconds, e.g. 50-400.")
@click.option("--error-rate", default="0", type=str, help="Share of requests answered 500/502/503.")
@click.option("--hang-rate", default="0", type=str, help="Share of requests that hang past a client timeout.")
@click.option("--hang-seconds", default=40.0, show_default=True, type=float)
@click.option("--drop-rate", default="0", type=str, help="Share of connections dropped mid-answer.")
@click.option("--commit-fail-rate", default="0", type=str,
              help="Share of creates that succeed but answer 502 or time out.")
@click.option("--count-after-latency", is_flag=True,
              help="Count a request in the rate-limit window after its latency/stall, not when it arrives.")
@click.option("--stall-seconds", default=0.0, show_default=True, type=float,
              help="Hold every request arriving during a stall this long, then release them at once.")
@click.option("--stall-every", default=0.0, show_default=True, type=float,
              help="Start a stall every this many seconds (needed with --stall-seconds).")
@click.option("--seed", default=None, type=int, help="Seed for repeatable faults.")
@click.option("--state-dir", default=None, type=click.Path(file_okay=False), help="Keep data across restarts.")
@click.option("--delete-module", is_flag=True,
              help="Answer DELETE /api/v1/external/modules/{id}, which TagMango does NOT document "
                   "(off: a plain 404, as for any unknown path).")
@click.pass_obj
def sandbox(config, bind, port, tokens, token_file, not_creator, video_disabled, mangoes, cdn_prefix,
            strict_assets, assets, envelope, rate_limit, latency, error_rate, hang_rate, hang_seconds, drop_rate,
            commit_fail_rate, count_after_latency, stall_seconds, stall_every, seed, state_dir,
            delete_module) -> None:
    """Run a local stand-in for the TagMango API (auth, limits, errors, faults).

    Accepted tokens: --token flags, else --token-file, else TAGMANGO_SANDBOX_TOKENS (TOKEN[=HOST] entries
    separated by commas or spaces), else the default token. Only the default token is ever printed.
    """
    from pathlib import Path

    from importer.sandbox import tokens as token_sources
    from importer.sandbox.config import DEFAULT_CDN_PREFIX, DEFAULT_MANGOES, DEFAULT_TOKEN, SandboxConfig
    from importer.sandbox.server import serve_forever

    try:
        token_map, token_source = token_sources.resolve(tokens, token_file, config.environ)
    except token_sources.TokenSourceError as exc:
        raise CommandError(str(exc), EXIT_CONFIG) from None
    for ignored in token_sources.given_sources(tokens, token_file, config.environ)[1:]:
        click.echo(f"note: ignoring {ignored}: {token_source} wins", err=True)
    try:
        low, _, high = latency.partition("-")
        latency_s = (float(low) / 1000, float(high or low) / 1000)
    except ValueError:
        raise click.BadParameter("use MIN-MAX in milliseconds, e.g. 50-400", param_hint="--latency") from None
    if stall_seconds and not stall_every:
        raise click.BadParameter("give --stall-every too (one-off stalls: POST /_sandbox/config "
                                 '{"stall_s": N})', param_hint="--stall-seconds")
    if stall_every and not 0 < stall_seconds < stall_every:
        raise click.BadParameter("must be above 0 and shorter than --stall-every", param_hint="--stall-seconds")
    config = SandboxConfig(
        tokens=token_map, not_creator_hosts={h.lower() for h in not_creator},
        video_disabled_hosts={h.lower() for h in video_disabled}, mangoes=set(DEFAULT_MANGOES) | set(mangoes),
        cdn_prefix=cdn_prefix or DEFAULT_CDN_PREFIX, strict_assets=strict_assets, assets=set(assets),
        envelope=envelope, rate_limit=rate_limit, latency_s=latency_s, error_rate=_rate(error_rate),
        hang_rate=_rate(hang_rate), hang_s=hang_seconds, drop_rate=_rate(drop_rate),
        commit_fail_rate=_rate(commit_fail_rate), count_after_latency=count_after_latency, stall_s=stall_seconds,
        stall_every_s=stall_every, seed=seed, state_dir=Path(state_dir) if state_dir else None,
        delete_module=delete_module)

    def ready(url: str) -> None:
        click.echo(f"TagMango sandbox listening on {url}")
        if token_source == "default":
            click.echo(f"Accepting the default token: {DEFAULT_TOKEN}")
        else:  # never the tokens themselves: they may have been given to stay out of sight
            click.echo(f"Accepting {len(token_map)} token(s) from {token_source}")
        click.echo(f"Known mango ids: {', '.join(sorted(config.mangoes))}")
        if config.delete_module:
            click.echo("Delete Module is on: DELETE /api/v1/external/modules/{id} (not a documented TagMango endpoint)")
        click.echo(f"Inspect: {url}/_sandbox/stats   (Ctrl-C to stop)")

    try:
        serve_forever(config, bind, port, on_ready=ready)
    except OSError as exc:
        click.echo(f"error: cannot listen on {bind}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_CONFIG)
