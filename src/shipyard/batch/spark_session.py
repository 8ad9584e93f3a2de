"""The Spark session a scoring run uses: offline, quiet, contained, and stopped when done.

Started here (``local[N]`` or a cluster master), it has no UI, downloads nothing, keeps its scratch
space and logging set-up in one temporary folder per process, and in local mode binds to 127.0.0.1 and
runs its Python workers on this interpreter. Under ``spark-submit`` its master and settings are kept;
a session already active in the process is used as it is and left running.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError

ARROW_BATCH_ROWS = 50_000  # rows per pandas frame handed to the model (per-call overhead amortised)
PANDAS_WARNING = "PySpark does not yet fully support pandas"
INSTALL_HINT = "pip install 'shipyard[spark]' (pyspark 4, Java 17 or 21)"

# Spark's own logging: warnings and errors only, minus the lines that are noise here. A failed task's
# Python traceback is not logged twice: the job's exception carries it to the driver, which reports it.
LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = stderr
appender.console.type = Console
appender.console.name = stderr
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
logger.native.name = org.apache.hadoop.util.NativeCodeLoader
logger.native.level = error
logger.conf.name = org.apache.spark.SparkConf
logger.conf.level = error
logger.executor.name = org.apache.spark.executor.Executor
logger.executor.level = off
logger.tasks.name = org.apache.spark.scheduler.TaskSetManager
logger.tasks.level = off
"""


def require_pyspark() -> Any:
    try:
        import pyspark
    except ImportError:
        raise ConfigError(f"--engine spark needs pyspark, which is not installed: {INSTALL_HINT}") from None
    return pyspark


def _launch_conf(master: str, work: Path) -> dict[str, str]:
    """For a JVM this process starts: offline, quiet and contained (no UI, no package downloads,
    scratch space and Spark's logging set-up under ``work``)."""
    (work / "log4j2.properties").write_text(LOG4J2)
    conf = {
        "spark.master": master,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.local.dir": str(work / "local"),
        "spark.sql.warehouse.dir": str(work / "warehouse"),
        "spark.jars.ivy": str(work / "ivy"),
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{work / 'log4j2.properties'}",
    }
    if master.startswith("local"):
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    return conf


JOB_CONF = {
    "spark.app.name": "shipyard-batch-score",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.debug.maxToStringFields": "1000",  # wide inputs (80 features): no truncation warning
    "spark.sql.execution.arrow.maxRecordsPerBatch": str(ARROW_BATCH_ROWS),
    "spark.executorEnv.PYTHONWARNINGS": f"ignore:{PANDAS_WARNING}:FutureWarning",
}


@contextmanager
def _launch_env(master: str) -> Iterator[None]:
    """Environment for the moment a local JVM and its context start (both read it only then): the
    Python workers must run this interpreter (the one with shipyard and the model's libraries), not
    the first ``python3`` on PATH, and Spark binds to the loopback interface only. A cluster's
    executors get their Python from the cluster (PYSPARK_PYTHON or ``spark.pyspark.python``)."""
    wanted = {"PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    added = [k for k in wanted if master.startswith("local") and not os.environ.get(k)]
    for key in added:
        os.environ[key] = wanted[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


@contextmanager
def spark_session(master: str) -> Iterator[Any]:
    """The Spark session to score with, stopped afterwards if this function started it.

    A session already active in this process (a notebook's, a test's) is used as it is, and
    ``master`` is ignored. Under ``spark-submit`` (which starts the JVM and sets
    PYSPARK_GATEWAY_PORT) its master and settings win; otherwise this starts ``master`` itself.
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    existing = SparkSession.getActiveSession()
    if existing is not None:
        yield existing
        return
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ
    conf = JOB_CONF if submitted else {**_launch_conf(master, _work_dir()), **JOB_CONF}
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    with _launch_env("" if submitted else master):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    try:
        yield spark
    finally:
        spark.stop()


@functools.cache
def _work_dir() -> Path:
    """One scratch folder per process for Spark's local dirs and logging set-up, removed at exit: the
    JVM outlives a stopped session and keeps the local dirs of its first one for the next."""
    path = Path(tempfile.mkdtemp(prefix="shipyard-spark-"))
    atexit.register(shutil.rmtree, path, True)
    return path
