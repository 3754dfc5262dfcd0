"""Recipe packages on the machine: following the package the server wants it to run, and installing one
(download, check, install) for that or for an `upgrade` command, keeping the old one when it fails."""

from __future__ import annotations

from simulator.errors import ProtocolError
from simulator.packages import FailedInstall, PackageOffer, PackageRefused, read_package, retry_delay_s
from simulator.session import EventKind, FleetSession
from simulator.vocabulary import PACKAGE_INSTALL_S, Misbehaviour


class Installing:
    """One install at a time; a package that failed is tried again after a backoff, not every tick."""

    def is_running(self, offer: PackageOffer) -> bool:
        """Is the offered package the one installed (same version, same bytes)?"""
        return (
            self.package is not None
            and self.package.version == offer.version
            and self.package.sha256 == offer.sha256
        )

    async def follow_desired_package(self, session: FleetSession) -> None:
        """Install the package the last heartbeat reply asked for, if the machine runs another version.

        Not while another install runs or an `upgrade` command for it waits (the command installs it
        and reports how it went), not while a customer's drink is being made, and not before the
        backoff of its last failure has passed.
        """
        offer = self.desired_package
        if offer is None or offer.version == self.package_version or self._installing.locked():
            return
        if self._upgrade_waiting(offer) or self._clock() < self.serving_until:
            return
        failed = self.failed_installs.get(offer.key)
        if failed is not None and self._clock() < failed.retry_at:
            return
        await self.install_package(session, offer)

    async def install_package(self, session: FleetSession, offer: PackageOffer) -> str | None:
        """Download, check and install the package; None when it runs, else why it failed (the machine
        keeps the package it had). An offer already running is not downloaded again."""
        async with self._installing:
            if self.is_running(offer):
                return None
            session.stats.package_downloads += 1
            try:
                content = await session.api.download(offer.url, token=self.token)
            except ProtocolError as error:
                return self._install_failed(session, offer, f"package download failed: {error}")
            try:
                package = read_package(content, offer)
            except PackageRefused as error:
                return self._install_failed(session, offer, f"package refused: {error}")
            await self._busy_for(session, self._takes(session, PACKAGE_INSTALL_S))
            fault = self._install_fault(session)
            if fault:
                return self._install_failed(session, offer, fault)
            previous, self.package = self.package_version, package
            self.failed_installs.pop(offer.key, None)
            session.stats.packages_installed += 1
            session.emit(
                EventKind.INSTALLED,
                self.serial,
                f"package {offer.version} ({len(package.menu)} recipes), was {previous}",
            )
            return None

    def _install_fault(self, session: FleetSession) -> str:
        """Why installing fails on this machine now, on purpose ("" when it works)."""
        if Misbehaviour.FAIL_INSTALLS in self.misbehaviours:
            return "installing failed: simulated fault (misbehaving: fail_installs)"
        chance = session.settings.install_failure_probability
        if chance > 0 and self.rng.random() < chance:
            return "installing failed: simulated flash write error"
        return ""

    def _install_failed(self, session: FleetSession, offer: PackageOffer, error: str) -> str:
        """Note the failure and when to try the package again; the machine keeps its package."""
        known = self.failed_installs.get(offer.key)
        failures = known.failures + 1 if known else 1
        delay_s = retry_delay_s(failures, self.interval_s(session), self.rng)
        self.failed_installs[offer.key] = FailedInstall(failures, error, self._clock() + delay_s)
        session.stats.package_installs_failed += 1
        session.emit(
            EventKind.INSTALL_FAILED,
            self.serial,
            f"package {offer.version}: {error}; still runs {self.package_version}, "
            f"tries again in {delay_s:.0f}s if still offered",
        )
        return error

    def _upgrade_waiting(self, offer: PackageOffer) -> bool:
        return any(
            command.get("type") == "upgrade"
            and isinstance(command.get("payload"), dict)
            and command["payload"].get("version") == offer.version
            for command in self._queue
        )
