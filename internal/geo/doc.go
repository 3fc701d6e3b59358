// Package geo tells where a network address is, and how near a relay is to a
// client. The directory uses it to send each download to a nearby relay and
// to explain its choice in the mirror list.
//
// Where an address is comes from two sources, combined by a Resolver:
//
//   - Ranges: address ranges from the directory's config, mapped to a
//     region name and optionally a country, continent, coordinates and
//     ASN. They are the whole story for a directory without a GeoIP
//     database, and let any directory pin private or special ranges.
//   - DB: a MaxMind-format City or Country database and/or an ASN database
//     (GeoLite2, GeoIP2, DB-IP Lite). Nothing is downloaded by ODI; the
//     operator points it at files and reloads on SIGHUP by opening a new DB
//     and swapping it in (see DB for why closing the old one is safe).
//
// Invariants:
//
//   - Lookups never fail. What is unknown is left zero, field by field; a
//     malformed database record is counted (DB.Errors), not returned.
//   - An IPv4-mapped IPv6 address (::ffff:192.0.2.1) is the IPv4 address
//     everywhere, in databases and in ranges.
//   - A Location made by this package carries a continent whenever it
//     carries a country, so ranking never has to derive one.
//   - Lookups and Rank do not allocate: they run on every redirect.
//   - Values are immutable once built; there is no package-level state.
//
// # Ranking
//
// Rank orders a relay relative to a client in tiers, nearest first:
//
//  1. Same network (ASN). Traffic that stays inside the client's provider
//     crosses no transit link and is usually the fewest hops; that is why
//     ISPs and universities host mirrors at all. A network spanning
//     continents (a cloud, a transit carrier) does not count as the same
//     network across them: there, distance matters more than the operator.
//  2. Same region, as named in the directory's ranges, unless the two sides'
//     countries or continents are known to differ. Operators name regions
//     for a reason (a campus, a data centre, a national research network),
//     and nothing else knows it.
//  3. Same country. Networks peer domestically, and many mirrors are funded
//     to serve their own country.
//  4. Same continent.
//  5. Great-circle distance, when both sides have coordinates but share
//     none of the above.
//  6. Known to be on another continent, with no coordinates.
//  7. Location unknown.
//
// The shared attributes come before kilometres because network paths follow
// providers and borders more than geography, and because GeoIP coordinates
// are often only a country's centroid. Within a tier the distance, when
// known, breaks ties. Rank says nothing of load or health: the directory
// weighs those against nearness itself.
package geo
