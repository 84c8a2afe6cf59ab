"""Check a built book in headless Chromium: every page loads, its images load, its math typesets.

``nbforget book --check`` (or `check_book`) serves the HTML folder on localhost, opens every page
of the book in headless Chromium through selenium, and for each page checks that

- the document and every image finished loading, and each image has a size (no broken figure);
- math, where the page has any, was typeset by MathJax without TeX errors;
- nothing was fetched from another host (the book reads offline);
- the browser console shows no errors;

and saves a screenshot of each page. Chromium and its driver come from the Debian packages
``chromium`` and ``chromium-driver`` (``make browser``).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from nbforget import NbforgetError

BROWSER_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000",
)


def chromium_paths() -> tuple[Path, Path]:
    """Chromium and chromedriver, from PATH or the Debian locations."""
    return (Path(shutil.which("chromium") or "/usr/bin/chromium"),
            Path(shutil.which("chromedriver") or "/usr/bin/chromedriver"))


def browser_available() -> bool:
    return all(path.exists() for path in chromium_paths())


def start_browser(profile_dir: Path):
    """A headless Chromium driven by selenium, with a fresh user-data folder `profile_dir`."""
    chromium, driver_path = chromium_paths()
    if not browser_available():
        raise NbforgetError(
            f"checking the book in a browser needs Chromium at {chromium} and its driver at {driver_path}; "
            "install them with `make browser` (Debian: apt-get install -y chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for argument in BROWSER_ARGS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(driver_path)), options=options)
    driver.set_page_load_timeout(60)
    return driver


def open_page(driver, url: str) -> None:
    """Load `url` and wait until the document and all its images have finished loading."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, 30)
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
    wait.until(lambda d: d.execute_script("return Array.from(document.images).every(image => image.complete)"))


def wait_for_mathjax(driver) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return Boolean(window.MathJax && MathJax.startup && MathJax.startup.promise)"))
    driver.set_script_timeout(30)
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "MathJax.startup.promise.then(() => done(true), error => done(String(error)));"
    )


@dataclass
class PageCheck:
    page: str                      # path relative to the book's root, e.g. generated/analyses/overview.html
    title: str = ""
    images: int = 0                # images on the page, all loaded
    math: int = 0                  # typeset formulas
    problems: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def check_page(driver, base_url: str, page: str, screenshots: Path | None = None) -> PageCheck:
    """Open `page` (relative to `base_url`) and collect what is wrong with it; a screenshot goes
    into the folder `screenshots`, named after the page."""
    try:
        open_page(driver, base_url + page)
    except Exception as error:  # a timeout or a driver error is a finding about this page
        return PageCheck(page, problems=[f"did not finish loading: {type(error).__name__}: {error}".strip()])
    screenshot = None if screenshots is None else screenshots / (page.removesuffix(".html").replace("/", "-") + ".png")
    return inspect_page(driver, base_url, page, screenshot)


def inspect_page(driver, base_url: str, page: str, screenshot: Path | None = None) -> PageCheck:
    """Collect what is wrong with the page the browser has open (loaded by `open_page`), and save
    a screenshot of it to the file `screenshot`."""
    result = PageCheck(page, title=driver.title)
    broken = driver.execute_script(
        "return Array.from(document.images)"
        ".filter(image => !(image.complete && image.naturalWidth > 0)).map(image => image.src)")
    result.images = int(driver.execute_script("return document.images.length"))
    if broken:
        result.problems.append(f"images that did not load: {broken}")
    if driver.execute_script("return document.querySelector('.math, .MathJax, mjx-container') !== null"):
        try:
            wait_for_mathjax(driver)
        except Exception as error:
            result.problems.append(f"MathJax did not start: {type(error).__name__}")
        result.math = int(driver.execute_script("return document.querySelectorAll('mjx-container').length"))
        errors = driver.execute_script("return document.querySelectorAll('mjx-merror').length")
        if result.math == 0:
            result.problems.append("the page has math but MathJax typeset none of it")
        if errors:
            result.problems.append(f"MathJax reported {errors} TeX errors")
    loaded = driver.execute_script("return performance.getEntriesByType('resource').map(entry => entry.name)")
    remote = [url for url in loaded if not url.startswith(base_url)]
    if remote:
        result.problems.append(f"fetched from other hosts: {remote}")
    severe = [entry["message"] for entry in driver.get_log("browser")
              if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]]
    if severe:
        result.problems.append(f"browser console errors: {severe}")
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
        result.screenshot = screenshot
    return result


def book_pages(html_dir: Path) -> list[str]:
    """Every page of the book: the HTML files of its sources (not search, genindex or _static)."""
    html_dir = Path(html_dir)
    skip = {"search.html", "genindex.html", "py-modindex.html"}
    return sorted(str(path.relative_to(html_dir)) for path in html_dir.rglob("*.html")
                  if not any(part.startswith("_") for part in path.relative_to(html_dir).parts)
                  and path.name not in skip and path.name != "index.html")


def check_book(html_dir: Path, *, screenshots: Path | None = None, progress: bool = True) -> list[PageCheck]:
    """Open every page of the built book at `html_dir` in headless Chromium; one `PageCheck` each."""
    import tempfile

    from tqdm.auto import tqdm

    from nbforget.publish.book import serve_book

    html_dir = Path(html_dir)
    pages = book_pages(html_dir)
    if not pages:
        raise NbforgetError(f"{html_dir} holds no book pages; build the book first (nbforget book)")
    results = []
    with tempfile.TemporaryDirectory(prefix="nbforget-chromium-") as profile, serve_book(html_dir) as base_url:
        driver = start_browser(Path(profile))
        try:
            for page in tqdm(pages, desc="checking pages in Chromium", unit="page", disable=not progress):
                results.append(check_page(driver, base_url, page, screenshots))
        finally:
            driver.quit()
    return results


def report(results: list[PageCheck]) -> str:
    lines = [f"{'ok' if r.ok else 'FAIL'}  {r.page}  ({r.images} images, {r.math} formulas)"
             + "".join(f"\n      {problem}" for problem in r.problems) for r in results]
    failed = sum(not r.ok for r in results)
    lines.append(f"{len(results) - failed} of {len(results)} pages render" + (f"; {failed} do not" if failed else ""))
    return "\n".join(lines)
