"""`StageContext`: what every training stage of a run shares."""

import dataclasses
import os

from tfiqa.training.stages.spec import stage_seed


@dataclasses.dataclass
class StageContext:
    """What every stage needs: config, strategy, model and where to write."""

    config: object
    workdir: str
    strategy: object
    model: object
    chief: bool
    # The chief writes into `workdir`; other workers into their own scratch
    # folder so that files never collide.
    write_root: str
    verbose: int
    seed: int
    pristine: dict = dataclasses.field(default_factory=dict)
    mos_splits: dict = dataclasses.field(default_factory=dict)
    # Folders the pristine images and the fine-tuning records come from.
    pristine_dir: str = ""
    mos_dir: str = ""
    precise_bn: object = None

    @classmethod
    def for_run(cls, config, workdir, strategy, verbose=None, model=None):
        """The context of a run in `workdir` (verbose: default from config)."""
        from tfiqa.training.strategy import is_chief, worker_write_root

        return cls(
            config=config,
            workdir=workdir,
            strategy=strategy,
            model=model,
            chief=is_chief(strategy),
            write_root=worker_write_root(strategy, workdir),
            verbose=config.runtime.verbose if verbose is None else int(verbose),
            seed=int(config.runtime.seed),
        )

    def stage_dir(self, stage, chief_copy=False):
        root = self.workdir if chief_copy else self.write_root
        return os.path.join(root, "checkpoints", stage)

    def dataset_seed(self, stage, epoch):
        """`stage_seed` of this run's seed: the seed of `stage`'s data in `epoch`."""
        return stage_seed(self.seed, stage, epoch)

    def recalibrate_bn(self, dataset):
        """Precise BN before validation: moving statistics from training batches.

        Training-mode steps use batch statistics, so this changes only what
        inference sees; it runs on every worker with the same data. Returns
        the batches used (0 when `runtime.precise_bn_batches` is off).

        Args:
            dataset: iterable of (images, labels) training batches.
        """
        count = int(self.config.runtime.precise_bn_batches)
        if count <= 0:
            return 0
        if self.precise_bn is None:
            # TensorFlow only once a stage trains: `tfiqa list` and the
            # config checks import the stages without it.
            from tfiqa.training.batchnorm import PreciseBatchNorm

            self.precise_bn = PreciseBatchNorm(self.model)
        batches = (batch[0] for _, batch in zip(range(count), dataset, strict=False))
        return self.precise_bn.recalibrate(batches)

    def log(self, message):
        if self.chief and self.verbose >= 0:
            print(message, flush=True)
