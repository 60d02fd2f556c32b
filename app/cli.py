"""``seqlab``, the command line: serve the API, train, export and import models, segment text.

    seqlab serve [--host H] [--port P]
    seqlab train CORPUS --model NAME [--create …] [--epochs N …]
    seqlab tokenize TEXT [--mode accurate|full|search] [--no-hmm] [--offsets]
    seqlab export NAME[@VERSION] [-o FILE]
    seqlab import FILE [--name NAME] [--create | --no-create]

``train``, ``export`` and ``import`` use the same data directory and registry as the service
(``SEQLAB_DATA_DIR``, or ``--data-dir``).
Under ``torchrun --nproc_per_node=N -m app.cli train …`` it trains data-parallel: each rank
on its shard of the stream, gradients averaged, rank 0 publishes.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pydantic import ValidationError

from models.errors import SeqlabError

if TYPE_CHECKING:  # the commands import torch and the app only when they run
    from app.registry import ModelRegistry
    from app.settings import Settings


def _progress_printer(stream: TextIO) -> Callable[[object], None]:
    """Show a worker's events as a progress bar and one line per epoch."""
    from models.training import EpochRecord, Progress

    def emit(event: object) -> None:
        if isinstance(event, Progress):
            fraction = event.fraction
            filled = int(fraction * 30)
            stream.write(
                f"\repoch {event.epoch}/{event.epochs} "
                f"step {event.step}/{event.total_steps} "
                f"[{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} "
                f"loss {'-' if event.loss is None else f'{event.loss:.3f}'} "
                f"{event.tokens_per_second:,.0f} tok/s "
                f"ETA {event.eta_seconds or 0.0:,.0f}s   "
            )
            stream.flush()
        elif isinstance(event, EpochRecord):
            perplexity = event.val_perplexity
            shown = f"{perplexity:.1f}" if perplexity is not None else "n/a"
            stream.write(
                f"\nepoch {event.epoch} done: train loss {event.train_loss:.3f}, "
                f"val perplexity {shown}, lr {event.lr:.2e}\n"
            )

    return emit


def _train(arguments: argparse.Namespace) -> int:
    import torch.distributed

    from app.jobs.files import CLI_JOB_PREFIX, discard
    from app.jobs.publishing import publish_run
    from app.jobs.worker import keep_freed_memory, save_result, train
    from app.ownership import Owner, kept_fresh
    from app.registry import ModelRegistry
    from app.schemas.registry import ModelSpec
    from app.schemas.tokenize import TokenizerSettings
    from app.schemas.training import TrainRequest
    from app.services.training import prepare_job
    from app.settings import Settings
    from app.tokenizers import TokenizerCache
    from models import distributed
    from models.device import resolve_device

    keep_freed_memory()
    settings = Settings(**({"data_dir": arguments.data_dir} if arguments.data_dir else {}))
    layout = settings.layout
    device = resolve_device(arguments.device or settings.device)
    context = None
    if distributed.launched_by_torchrun():
        context = distributed.init_distributed(device)
        device = context.device
    is_main = context is None or context.is_main
    log = sys.stderr if is_main else open(os.devnull, "w")  # noqa: SIM115 - lives as long as the run

    create = None
    if arguments.create:
        create = ModelSpec(
            embedding_dim=arguments.embedding_dim,
            hidden_size=arguments.hidden_size,
            num_layers=arguments.num_layers,
            cell=arguments.cell,
            dropout=arguments.dropout or 0.0,
            seed=arguments.seed,
            output=arguments.output,
            tokenizer=TokenizerSettings(boundary=arguments.boundary),
        )
    document = Path(arguments.corpus).read_text(encoding="utf-8")
    if not document.strip():
        print(f"seqlab: {arguments.corpus} holds no text", file=sys.stderr)
        return 2
    request = TrainRequest(
        model=arguments.model,
        texts=[document],
        create=create,
        seq_len=arguments.seq_len,
        batching=arguments.batching,
        batch_size=arguments.batch_size,
        epochs=arguments.epochs,
        lr=arguments.lr,
        optimizer=arguments.optimizer,
        val_fraction=arguments.val_fraction,
        seed=arguments.seed,
        max_steps=arguments.max_steps,
        max_seconds=arguments.max_seconds,
        patience=arguments.patience,
        log_every=arguments.log_every,
    )
    # Rank 0 opens (and on a new data dir creates) the registry first: SQLite refuses a
    # second process switching the same new database to WAL at the same moment.
    if context is not None and not is_main:
        torch.distributed.barrier()
    registry = ModelRegistry(
        layout, device, TokenizerCache(layout.jieba_cache), older_versions_kept=1
    )
    registry.load()
    if context is not None and is_main:
        torch.distributed.barrier()
    rank_suffix = f"-rank{context.rank}" if context else ""
    # Named for its owner, so a service starting meanwhile sweeps it only once we are gone.
    job_dir = layout.jobs / f"{CLI_JOB_PREFIX}{Owner.current().token}{rank_suffix}"
    # Fresh while it trains: a service on another host sharing the data dir sweeps it only once
    # it is a lease old (app/ownership.py), and a run may take hours.
    with kept_fresh(job_dir):
        try:
            prepared = prepare_job(
                job_dir.name,
                request,
                [document],
                registry,
                registry.tokenizers,
                settings.limits,
                job_dir,
            )
            data = prepared.data
            print(
                f"{data.tokens:,} tokens ({data.train_tokens:,} train, {data.val_tokens:,} "
                f"held out), vocabulary {data.vocab_size:,}, OOV rate {data.oov_rate:.2%}",
                file=log,
            )
            shard = None
            after_backward = None
            if context is not None:
                world, rank = context.world_size, context.rank
                shard = lambda ids: distributed.shard(ids, rank, world)  # noqa: E731
                after_backward = distributed.average_gradients
            model, result = train(
                prepared.spec, _progress_printer(log), lambda: False, device, after_backward, shard
            )
            if arguments.dump_weights:
                from safetensors.torch import save_model

                target = Path(arguments.dump_weights)
                target.mkdir(parents=True, exist_ok=True)
                save_model(model, str(target / f"rank{context.rank if context else 0}.safetensors"))
            if is_main:
                save_result(prepared.spec, model)
                loaded = publish_run(registry, prepared.spec, result, data, kind="cli")
                perplexity = result.val_perplexity
                print(
                    f"\npublished {loaded.label}: {result.steps} steps "
                    f"in {result.elapsed_seconds:.1f}s, "
                    f"{result.tokens_per_second:,.0f} tok/s, train loss {result.train_loss:.3f}, "
                    f"val perplexity {perplexity if perplexity is None else round(perplexity, 1)} "
                    f"(unigram {data.unigram_perplexity or float('nan'):.1f}, "
                    f"bigram {data.bigram_perplexity or float('nan'):.1f}), "
                    f"stopped: {result.stop_reason}",
                    file=log,
                )
        finally:
            discard(job_dir)
            registry.close()
            if context is not None:
                distributed.finish_distributed()
    if context is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # gloo can abort at interpreter exit; the work is done and flushed
    return 0


def _tokenize(arguments: argparse.Namespace) -> int:
    from models.tokenizer import Tokenizer, TokenizerConfig

    tokenizer = Tokenizer(TokenizerConfig(mode=arguments.mode, hmm=not arguments.no_hmm))
    segmentation = tokenizer.segment(arguments.text, offsets=arguments.offsets)
    if arguments.json:
        print(
            json.dumps(
                {"tokens": segmentation.tokens, "offsets": segmentation.offsets}, ensure_ascii=False
            )
        )
    elif arguments.offsets:
        for token, (start, end) in zip(
            segmentation.tokens, segmentation.offsets or [], strict=True
        ):
            print(f"{start}\t{end}\t{token}")
    else:
        print(" / ".join(segmentation.tokens))
    return 0


def _open_registry(data_dir: str | None) -> tuple[ModelRegistry, Settings]:
    """The data dir's registry, as ``seqlab train`` opens it, on the CPU: an export reads
    files, and an import checks its model on the CPU (the service loads it on its device)."""
    import torch

    from app.registry import ModelRegistry
    from app.settings import Settings
    from app.tokenizers import TokenizerCache

    settings = Settings(**({"data_dir": data_dir} if data_dir else {}))
    layout = settings.layout
    registry = ModelRegistry(
        layout, torch.device("cpu"), TokenizerCache(layout.jieba_cache), older_versions_kept=1
    )
    registry.load()
    return registry, settings


def _export(arguments: argparse.Namespace) -> int:
    from app.services.archives import export_version

    name, version = arguments.model
    registry, _ = _open_registry(arguments.data_dir)
    try:
        exported = export_version(registry, name, version or registry.describe(name).version)
    finally:
        registry.close()
    target = arguments.output or exported.filename
    if target == "-":
        for chunk in exported.chunks():
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    else:
        _write_whole(Path(target), exported.chunks())
    print(
        f"exported {exported.name}@{exported.version} to {target} ({exported.size:,} bytes, "
        f"manifest sha256 {exported.digest})",
        file=sys.stderr,
    )
    return 0


def _migrate(arguments: argparse.Namespace) -> int:
    """Bring the database to the current schema now (every process does it on first use; this
    is for a deployment step before the replicas start, e.g. a Kubernetes Job)."""
    from app.database import Database, redacted, schema_revision
    from app.settings import Settings

    settings = Settings(**({"data_dir": arguments.data_dir} if arguments.data_dir else {}))
    database = Database(settings.layout.database)
    try:
        before = schema_revision(database)
        database.migrate()
        after = schema_revision(database)
    finally:
        database.close()
    change = "already current" if before == after else f"migrated from {before or 'none'}"
    print(f"{redacted(database.url)}: schema {after} ({change})")
    return 0


def _model_reference(text: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION``."""
    name, at, version = text.partition("@")
    if at and not (version.isdigit() and int(version) >= 1):
        raise argparse.ArgumentTypeError(f"{text!r}: the version after @ must be a number from 1")
    return name, int(version) if at else None


def _write_whole(target: Path, chunks: Iterable[bytes]) -> None:
    """Write a file under a temporary name and rename it: never a partial archive at
    ``target``."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        with open(partial, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _import(arguments: argparse.Namespace) -> int:
    from app.services.archives import import_archive

    registry, settings = _open_registry(arguments.data_dir)
    try:
        if arguments.archive == "-":
            loaded = import_archive(
                sys.stdin.buffer, registry, settings.limits, arguments.name, arguments.create
            )
        else:
            with open(arguments.archive, "rb") as source:
                loaded = import_archive(
                    source, registry, settings.limits, arguments.name, arguments.create
                )
    finally:
        registry.close()
    origin = loaded.source.get("origin", {})
    print(
        f"imported {loaded.label} from {arguments.archive} "
        f"(exported as {origin.get('name')}@{origin.get('version')})",
        file=sys.stderr,
    )
    return 0


GRACEFUL_SHUTDOWN_SECONDS = 3


def _serve(arguments: argparse.Namespace) -> int:
    from app.settings import Settings

    settings = Settings()
    if settings.workers > 1 and arguments.listen_fd is None:
        # The supervisor imports neither the app nor torch: it holds a socket and processes.
        from app.workers import supervise

        return supervise(arguments.host, arguments.port, settings.workers)

    import uvicorn

    from app.connections import limited_protocol
    from app.main import create_app

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=arguments.host,
        port=arguments.port,
        # uvicorn's access log cost ~10 % of a small request's time (docs/benchmarks.md):
        # off unless SEQLAB_ACCESS_LOG=true; /metrics counts every request the app answers.
        access_log=settings.access_log,
        # Header, URL, time and connection limits, problem JSON for malformed requests, and the
        # bound on small requests in flight (429 past it).
        http=limited_protocol(settings.connections, app.state.service.small_requests),
        # Open streams (a job's events, a `wait: true`) must not hold a stop past this: then the
        # lifespan has its training workers save their state (up to 5 s) before a container
        # runtime's SIGKILL, 10 s after its SIGTERM.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    jobs = app.state.service.jobs

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            # Stopping: never take over the jobs of a runner that stops too (SEQLAB_WORKERS).
            jobs.stop_taking_over()
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

    server = Server(config)
    if arguments.listen_fd is None:
        server.run()
    else:  # one of SEQLAB_WORKERS: the supervisor's listening socket, shared by all
        server.run(sockets=[socket.socket(fileno=arguments.listen_fd)])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqlab", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="start the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    # Set by the supervisor of SEQLAB_WORKERS for each worker: serve on this inherited socket.
    serve.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    serve.set_defaults(run=_serve)

    train = commands.add_parser("train", help="train a model on a UTF-8 text file")
    train.add_argument("corpus", help="a UTF-8 text file; --boundary says what one text is")
    train.add_argument("--model", required=True, help="the model to train (or --create)")
    train.add_argument("--create", action="store_true", help="create the model from the corpus")
    train.add_argument("--embedding-dim", type=int, default=64)
    train.add_argument("--hidden-size", type=int, default=128)
    train.add_argument("--num-layers", type=int, default=1)
    train.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="lstm")
    train.add_argument("--dropout", type=float, default=None)
    train.add_argument(
        "--boundary",
        choices=["line", "paragraph", "none"],
        default="line",
        help="with --create: a text is a line, a paragraph (up to a blank line), or none",
    )
    train.add_argument(
        "--output", choices=["full", "adaptive"], default="full", help="with --create"
    )
    train.add_argument("--seq-len", type=int, default=35)
    train.add_argument("--batching", choices=["stream", "windows"], default="stream")
    train.add_argument("--batch-size", type=int, default=20)
    train.add_argument("--epochs", type=int, default=1)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam")
    train.add_argument("--val-fraction", type=float, default=0.1)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--max-steps", type=int, default=None)
    train.add_argument("--max-seconds", type=float, default=None)
    train.add_argument("--patience", type=int, default=None)
    train.add_argument("--log-every", type=int, default=20)
    train.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    train.add_argument("--data-dir", default=None, help="default: SEQLAB_DATA_DIR or ./data")
    train.add_argument("--dump-weights", default=None, help="write each rank's final weights here")
    train.set_defaults(run=_train)

    tokenize = commands.add_parser("tokenize", help="segment a text with jieba")
    tokenize.add_argument("text")
    tokenize.add_argument("--mode", choices=["accurate", "full", "search"], default="accurate")
    tokenize.add_argument("--no-hmm", action="store_true")
    tokenize.add_argument("--offsets", action="store_true")
    tokenize.add_argument("--json", action="store_true")
    tokenize.set_defaults(run=_tokenize)

    export = commands.add_parser(
        "export", help="write a model version as one archive file (docs/operations.md)"
    )
    export.add_argument(
        "model",
        type=_model_reference,
        metavar="NAME[@VERSION]",
        help="the latest version if omitted",
    )
    export.add_argument(
        "-o", "--output", default=None, help="default: NAME-vVERSION.seqlab here; - for stdout"
    )
    export.add_argument("--data-dir", default=None, help="default: SEQLAB_DATA_DIR or ./data")
    export.set_defaults(run=_export)

    import_ = commands.add_parser(
        "import", help="add a model archive as a new model or a model's next version"
    )
    import_.add_argument("archive", metavar="FILE", help="an exported archive; - for stdin")
    import_.add_argument("--name", default=None, help="default: the name in the archive")
    import_.add_argument(
        "--create",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--create: a new model (fails if the name is taken); --no-create: the next "
        "version of an existing model; neither: whichever applies",
    )
    import_.add_argument("--data-dir", default=None, help="default: SEQLAB_DATA_DIR or ./data")
    import_.set_defaults(run=_import)

    migrate = commands.add_parser(
        "migrate",
        help="bring the database (SEQLAB_DATABASE_URL, or the data dir's SQLite file) to the "
        "current schema",
    )
    migrate.add_argument("--data-dir", default=None, help="default: SEQLAB_DATA_DIR or ./data")
    migrate.set_defaults(run=_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        return arguments.run(arguments)
    except ValidationError as error:
        for item in error.errors():
            field = ".".join(str(part) for part in item["loc"])
            print(f"seqlab: {field}: {item['msg']}", file=sys.stderr)
        return 2
    except (SeqlabError, OSError) as error:
        print(f"seqlab: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        from sqlalchemy.exc import OperationalError

        from app.errors import ServiceError

        if isinstance(error, ServiceError):
            print(f"seqlab: {error.detail}", file=sys.stderr)
            return 2
        if isinstance(error, OperationalError):  # the database is out of reach: say so
            reason = str(error.orig).splitlines()[0] if error.orig else str(error)
            print(f"seqlab: the database cannot be reached: {reason}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
