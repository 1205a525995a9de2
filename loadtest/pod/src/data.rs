//! Synthetic esports data: a fixed match list plus per-id live state and
//! player stats derived deterministically from the id (and the clock).

use std::fmt::Write as _;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use super::state::{json_string, Identity};

/// One row of the fixed match list.
struct Match {
    id: &'static str,
    game: Game,
    tournament: &'static str,
    home: &'static str,
    away: &'static str,
    score: (u8, u8),
    live: bool,
    best_of: u8,
    scheduled_at: &'static str,
}

const MATCHES: &[Match] = &[
    Match {
        id: "lol-worlds25-final",
        game: Game::Lol,
        tournament: "Worlds 2025",
        home: "T1",
        away: "Gen.G",
        score: (2, 1),
        live: true,
        best_of: 5,
        scheduled_at: "2025-11-09T08:00:00Z",
    },
    Match {
        id: "dota-ti25-gf",
        game: Game::Dota,
        tournament: "The International 2025",
        home: "Team Spirit",
        away: "Team Liquid",
        score: (1, 1),
        live: true,
        best_of: 5,
        scheduled_at: "2025-09-14T11:00:00Z",
    },
    Match {
        id: "cs2-major25-qf2",
        game: Game::Cs2,
        tournament: "BLAST Austin Major 2025",
        home: "Vitality",
        away: "MOUZ",
        score: (1, 0),
        live: true,
        best_of: 3,
        scheduled_at: "2025-06-19T17:30:00Z",
    },
    Match {
        id: "val-champs25-sf1",
        game: Game::Valorant,
        tournament: "VCT Champions 2025",
        home: "Fnatic",
        away: "Paper Rex",
        score: (0, 0),
        live: false,
        best_of: 3,
        scheduled_at: "2025-10-04T09:00:00Z",
    },
    Match {
        id: "cs2-iem25-gf",
        game: Game::Cs2,
        tournament: "IEM Cologne 2025",
        home: "Natus Vincere",
        away: "FaZe Clan",
        score: (2, 2),
        live: true,
        best_of: 5,
        scheduled_at: "2025-08-10T16:00:00Z",
    },
    Match {
        id: "lol-lck25-w9-hle-kt",
        game: Game::Lol,
        tournament: "LCK 2025",
        home: "Hanwha Life Esports",
        away: "KT Rolster",
        score: (0, 0),
        live: false,
        best_of: 3,
        scheduled_at: "2025-08-22T08:00:00Z",
    },
];

#[derive(Clone, Copy)]
enum Game {
    Lol,
    Dota,
    Cs2,
    Valorant,
}

const GAMES: [Game; 4] = [Game::Lol, Game::Dota, Game::Cs2, Game::Valorant];

impl Game {
    fn title(self) -> &'static str {
        match self {
            Game::Lol => "League of Legends",
            Game::Dota => "Dota 2",
            Game::Cs2 => "CS2",
            Game::Valorant => "Valorant",
        }
    }

    fn teams(self) -> &'static [&'static str] {
        match self {
            Game::Lol => &["T1", "Gen.G", "Bilibili Gaming", "G2 Esports", "Top Esports"],
            Game::Dota => &["Team Spirit", "Team Liquid", "Gaimin Gladiators", "Tundra"],
            Game::Cs2 => &["Vitality", "MOUZ", "Natus Vincere", "FaZe Clan", "Spirit"],
            Game::Valorant => &["Fnatic", "Paper Rex", "Sentinels", "Team Heretics"],
        }
    }

    fn maps(self) -> &'static [&'static str] {
        match self {
            Game::Lol => &["Summoner's Rift"],
            Game::Dota => &["Dota 2 (Radiant/Dire)"],
            Game::Cs2 => &["Mirage", "Inferno", "Nuke", "Ancient", "Anubis", "Dust2", "Train"],
            Game::Valorant => &["Ascent", "Bind", "Haven", "Lotus", "Sunset", "Icebox"],
        }
    }

    /// Round-based shooters report rounds; MOBAs report game time instead.
    fn round_based(self) -> bool {
        matches!(self, Game::Cs2 | Game::Valorant)
    }
}

/// Builds the (pod-specific, but otherwise constant) `GET /v1/matches` body.
pub(crate) fn matches_body(id: &Identity) -> io::Result<String> {
    let mut rows = String::with_capacity(256 * MATCHES.len());
    for (i, m) in MATCHES.iter().enumerate() {
        if i > 0 {
            rows.push(',');
        }
        let _ = write!(
            rows,
            r#"{{"id":"{}","game":"{}","tournament":{},"teams":[{},{}],"score":[{},{}],"status":"{}","best_of":{},"scheduled_at":"{}"}}"#,
            m.id,
            m.game.title(),
            json_string(m.tournament)?,
            json_string(m.home)?,
            json_string(m.away)?,
            m.score.0,
            m.score.1,
            if m.live { "live" } else { "upcoming" },
            m.best_of,
            m.scheduled_at,
        );
    }
    Ok(id.object(&format!(r#""matches":[{rows}]"#)))
}

/// Ids come straight from the URL path, so only a safe charset is accepted;
/// that also lets bodies embed them without JSON escaping.
pub(crate) fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// FNV-1a: a stable, dependency-free hash to derive data from an id.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `GET /v1/matches/{id}/live`. `match_id` must have passed [`valid_id`].
pub(crate) fn live_body(ident: &Identity, match_id: &str) -> String {
    let h = fnv1a(match_id);
    let (game, home, away, series) = match MATCHES.iter().find(|m| m.id == match_id) {
        Some(m) => (m.game, m.home, m.away, m.score),
        None => {
            let game = GAMES[(h % 4) as usize];
            let teams = game.teams();
            let a = (h >> 8) as usize % teams.len();
            // Offset in 1..len keeps the two sides distinct.
            let b = (a + 1 + (h >> 16) as usize % (teams.len() - 1)) % teams.len();
            (game, teams[a], teams[b], (((h >> 24) % 2) as u8, ((h >> 25) % 2) as u8))
        }
    };
    let maps = game.maps();
    let map = maps[(h >> 32) as usize % maps.len()];

    // The live state advances with the clock so repeated polls look live.
    let now = now_ms();
    // Each id gets its own phase within a ~40 minute game.
    let elapsed_s = (now / 1000 + h % 2400) % 2400;
    let started_at_ms = now.saturating_sub(elapsed_s * 1000);
    let home_share = 35 + (h >> 40) % 31; // percent of the action won by home

    let (round, score, kills) = if game.round_based() {
        // ~100 s per round; neither side reaches the 13th (winning) round.
        let played = elapsed_s / 100;
        let won = (played * home_share / 100).min(12);
        let score = (won, (played - won).min(12));
        let played = score.0 + score.1;
        (played + 1, score, (played * 3 + score.0 * 2, played * 3 + score.1 * 2))
    } else {
        // MOBAs: the "round" is the game number within the series and the
        // score is the kill score, as broadcasts show it.
        let total_kills = elapsed_s / 60;
        let home_kills = total_kills * home_share / 100;
        let kills = (home_kills, total_kills - home_kills);
        (u64::from(series.0) + u64::from(series.1) + 1, kills, kills)
    };

    let mut out = String::with_capacity(448 + ident.json_fields.len());
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        r#"{{"match_id":"{match_id}","game":"{}","status":"live","teams":{{"home":"{home}","away":"{away}"}},"series":{{"home":{},"away":{}}},"map":"{map}","round":{round},"score":{{"home":{},"away":{}}},"kills":{{"home":{},"away":{}}},"game_time_s":{elapsed_s},"started_at_ms":{started_at_ms},"updated_at_ms":{now},{}}}"#,
        game.title(),
        series.0,
        series.1,
        score.0,
        score.1,
        kills.0,
        kills.1,
        ident.json_fields,
    );
    out
}

/// `GET /v1/players/{id}/stats`. `player_id` must have passed [`valid_id`].
pub(crate) fn player_body(ident: &Identity, player_id: &str) -> String {
    let h = fnv1a(player_id);
    let game = GAMES[(h % 4) as usize];
    let teams = game.teams();
    let team = teams[(h >> 8) as usize % teams.len()];
    let matches = 40 + (h >> 16) % 360;
    let wins = matches * (40 + (h >> 24) % 25) / 100;
    let kills = 2.0 + ((h >> 32) % 2000) as f64 / 100.0;
    let deaths = 1.5 + ((h >> 40) % 600) as f64 / 100.0;
    let assists = 1.0 + ((h >> 48) % 1200) as f64 / 100.0;
    let kda = (kills + assists) / deaths;
    let rating = 0.8 + ((h >> 56) % 60) as f64 / 100.0;

    let mut out = String::with_capacity(320 + ident.json_fields.len());
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        r#"{{"player_id":"{player_id}","game":"{}","team":"{team}","matches_played":{matches},"wins":{wins},"losses":{},"avg_kills":{kills:.2},"avg_deaths":{deaths:.2},"avg_assists":{assists:.2},"kda":{kda:.2},"rating":{rating:.2},{}}}"#,
        game.title(),
        matches - wins,
        ident.json_fields,
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn ident() -> Identity {
        Identity::new("pod \"a\"".into(), "v2".into()).unwrap()
    }

    #[test]
    fn bodies_are_valid_json() {
        let id = ident();
        let m: serde_json::Value = serde_json::from_str(&matches_body(&id).unwrap()).unwrap();
        assert_eq!(m["pod"], "pod \"a\"");
        assert_eq!(m["matches"].as_array().unwrap().len(), MATCHES.len());
        for match_id in ["lol-worlds25-final", "cs2-iem25-gf", "x", "abc-123_Z.9"] {
            let v: serde_json::Value = serde_json::from_str(&live_body(&id, match_id)).unwrap();
            assert_eq!(v["match_id"], match_id);
            assert_eq!(v["version"], "v2");
            assert_ne!(v["teams"]["home"], v["teams"]["away"]);
            let p: serde_json::Value = serde_json::from_str(&player_body(&id, match_id)).unwrap();
            assert_eq!(p["player_id"], match_id);
            assert!(p["kda"].as_f64().unwrap() > 0.0);
        }
    }

    #[test]
    fn ids_are_restricted() {
        assert!(valid_id("cs2-iem25-gf"));
        assert!(!valid_id(""));
        assert!(!valid_id("a\"b"));
        assert!(!valid_id("a%20b"));
        assert!(!valid_id(&"x".repeat(65)));
    }
}
